"""Operator actions on runs (cancel, replay): preview, confirmation page, per-run outcome messages."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from squidmesh import api
from squidmesh.audit import EventSource
from squidmesh.exceptions import SquidmeshError
from squidmesh.lifecycle import RunStatus
from squidmesh.models import WorkflowRun
from squidmesh.registry import registry

__all__ = ["CANCEL", "OPERATIONS", "REPLAY", "Operation", "perform", "render_confirmation"]

#: Most runs one action may touch: each is its own API call (and transaction)
#: inside one HTTP request, so "select all 1,000,000" must be refused.
MAX_RUNS_PER_ACTION = 100
#: The one-time token of a confirmation form (`render_confirmation`).
CONFIRMATION_TOKEN = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Operation:
    """One operator action: its name, wording, permission and the API call behind it."""

    name: str
    title: str | Promise
    past: str | Promise
    button: str | Promise
    permission: str
    problem: Callable[[WorkflowRun], str | None]
    apply: Callable[..., tuple[int, SafeString, WorkflowRun]]


def _cancel_problem(run: WorkflowRun) -> str | None:
    if run.is_terminal:
        return _("already %(status)s, cannot be cancelled") % {"status": run.status}
    return None


def _replay_problem(run: WorkflowRun) -> str | None:
    # A preview only; replay_run() validates again and its error is what is reported.
    try:
        definition = registry.get(run.workflow)
        definition.get_trigger(run.trigger).clean_payload(run.payload)
    except SquidmeshError as error:
        return str(error)
    return None


def _audit(request) -> dict[str, Any]:
    """Return the `actor`, `source` and `reason` of an operation confirmed in `request`."""
    return {
        "actor": request.user,
        "source": EventSource.ADMIN,
        "reason": request.POST.get("reason", "").strip(),
    }


def replay_key(request, run: WorkflowRun) -> str | None:
    """Return the idempotency key of replaying `run` from the confirmation form in `request`.

    The form's one-time token makes it single-use: a second POST of the same
    form (a double click, a resubmit after "back") finds the replay the first
    one started instead of starting another. The database's unique key
    settles even two concurrent POSTs.
    """
    token = request.POST.get("confirmation", "")
    return f"admin:{token}:{run.pk}" if CONFIRMATION_TOKEN.match(token) else None


def _apply_cancel(modeladmin, request, run: WorkflowRun) -> tuple[int, SafeString, WorkflowRun]:
    before = run.status
    after = api.cancel_run(run.pk, **_audit(request))
    link = run_link(after)
    if before == RunStatus.CANCELLING:
        return messages.INFO, format_html(_("Run {} was already cancelling."), link), after
    modeladmin.log_change(request, after, _("Cancelled from the admin (was %s).") % before)
    if after.status == RunStatus.CANCELLING:
        return (
            messages.SUCCESS,
            format_html(
                _(
                    "Run {} ({}) is cancelling: its running step may finish, "
                    "then the run stops without scheduling more work."
                ),
                link,
                after.workflow,
            ),
            after,
        )
    return messages.SUCCESS, format_html(_("Run {} ({}) cancelled."), link, after.workflow), after


def _apply_replay(modeladmin, request, run: WorkflowRun) -> tuple[int, SafeString, WorkflowRun]:
    started = api.replay_run_once(
        run.pk, idempotency_key=replay_key(request, run), **_audit(request)
    )
    replay = started.run
    if not started.started_now:
        message = format_html(
            _("Run {} was already replayed as run {} by this confirmation; no new run started."),
            run_link(run),
            run_link(replay),
        )
        return messages.INFO, message, replay
    modeladmin.log_change(request, run, _("Replayed from the admin as run %s.") % replay.pk)
    modeladmin.log_addition(request, replay, _("Replay of run %s started from the admin.") % run.pk)
    message = format_html(
        _("Run {} ({}) replayed as new run {}."), run_link(run), run.workflow, run_link(replay)
    )
    return messages.SUCCESS, message, replay


CANCEL = Operation(
    name="cancel",
    title=gettext_lazy("Cancel runs"),
    past=gettext_lazy("cancelled"),
    button=gettext_lazy("Yes, cancel"),
    permission="cancel",
    problem=_cancel_problem,
    apply=_apply_cancel,
)
REPLAY = Operation(
    name="replay",
    title=gettext_lazy("Replay runs"),
    past=gettext_lazy("replayed"),
    button=gettext_lazy("Yes, replay"),
    permission="replay",
    problem=_replay_problem,
    apply=_apply_replay,
)
OPERATIONS = {operation.name: operation for operation in (CANCEL, REPLAY)}


def run_link(run: WorkflowRun) -> SafeString:
    """Return a link to the run's admin page, labelled with the start of its id."""
    url = reverse("admin:squidmesh_workflowrun_change", args=[run.pk])
    return format_html('<a href="{}" title="{}"><code>{}</code></a>', url, run.pk, str(run.pk)[:8])


def perform(
    modeladmin, request, operation: Operation, runs: Sequence[WorkflowRun]
) -> dict[uuid.UUID, WorkflowRun]:
    """Apply `operation` to each run through the public API and message the outcome per run.

    A run the action does not apply to gets a warning naming it and the
    reason; the others are unaffected. Return, by run id, the runs the API
    returned for the successes (the cancelled run, or the new replay).
    """
    outcomes: dict[uuid.UUID, WorkflowRun] = {}
    for run in runs:
        try:
            level, message, result = operation.apply(modeladmin, request, run)
        except SquidmeshError as error:
            modeladmin.message_user(
                request,
                format_html(
                    _("Run {} ({}) was not {}: {}"),
                    run_link(run),
                    run.workflow,
                    operation.past,
                    str(error),
                ),
                messages.WARNING,
            )
        else:
            modeladmin.message_user(request, message, level)
            outcomes[run.pk] = result
    return outcomes


def render_confirmation(
    modeladmin,
    request,
    operation: Operation,
    runs: Sequence[WorkflowRun],
    *,
    action: str | None = None,
) -> TemplateResponse:
    """Return the "are you sure" page listing `runs` and what the operation will do to each.

    With `action`, the form posts back to the changelist as that admin
    action; otherwise to the current URL (the single-run views).
    """
    rows = [(run, operation.problem(run)) for run in runs]
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": operation.title,
        "subtitle": None,
        "opts": modeladmin.opts,
        "operation": operation,
        "rows": rows,
        "applicable": sum(1 for _run, problem in rows if problem is None),
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        # Makes the form single-use for replays (`replay_key`).
        "confirmation": uuid.uuid4().hex,
        "media": modeladmin.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(
        request, "admin/squidmesh/workflowrun/operation_confirmation.html", context
    )
