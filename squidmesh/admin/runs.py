"""The read-only `WorkflowRun` admin: run list, run detail with diagram, cancel/replay, workflows page."""

from __future__ import annotations

import re
import uuid
from functools import reduce
from operator import and_
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.dateformat import format as date_format
from django.utils.html import format_html, format_html_join
from django.utils.text import smart_split, unescape_string_literal
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from squidmesh import api
from squidmesh.admin.diagram import RunProgress, render_diagram
from squidmesh.admin.display import format_duration, status_badge
from squidmesh.admin.filters import TriggerFilter, WorkflowFilter
from squidmesh.admin.operations import (
    CANCEL,
    MAX_RUNS_PER_ACTION,
    REPLAY,
    Operation,
    perform,
    render_confirmation,
    run_link,
)
from squidmesh.admin.pagination import RunPaginator
from squidmesh.exceptions import RunNotFound
from squidmesh.models import WorkflowRun
from squidmesh.registry import registry

__all__ = ["WorkflowRunAdmin"]

#: Shown in the run detail; later replays are reached through the filtered list.
MAX_REPLAYS_LISTED = 20
#: A run id prefix as shown in the list (8 hex digits) or longer, hyphens allowed.
RUN_ID_PREFIX = re.compile(r"^[0-9a-fA-F]{8}[0-9a-fA-F-]{0,28}$")
#: The JSON columns are not shown in the list; a context may be megabytes.
LIST_DEFERRED_FIELDS = ("payload", "context", "last_error")


class RunChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer(*LIST_DEFERRED_FIELDS)


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    """Inspect and steer runs; every change goes through `squidmesh.cancel_run` / `replay_run`."""

    list_display = [
        "short_id",
        "status_badge",
        "workflow",
        "trigger",
        "current_step",
        "created",
        "updated",
        "duration",
    ]
    list_display_links = ["short_id"]
    list_filter = [
        "status",
        WorkflowFilter,
        TriggerFilter,
        # Not date_hierarchy: its year/month links need a DISTINCT over every row.
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["id"]  # shows the search box; the search itself is get_search_results
    search_help_text = gettext_lazy(
        "A run id (whole, or its first 8 or more characters) or any text in the payload."
    )
    sortable_by = ["created", "updated"]
    list_per_page = 50
    list_max_show_all = 200
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = RunPaginator
    actions = ["cancel_runs", "replay_runs"]
    readonly_fields = [
        "run_id",
        "status_badge",
        "workflow_link",
        "trigger",
        "current_step",
        "idempotency_key",
        "replay_source",
        "replays",
        "created_time",
        "started_time",
        "updated_time",
        "finished_time",
        "duration",
        "next_delivery_time",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "run_id",
                    "status_badge",
                    "workflow_link",
                    "trigger",
                    "current_step",
                    "idempotency_key",
                    "replay_source",
                    "replays",
                ]
            },
        ),
        (
            gettext_lazy("Timing"),
            {
                "fields": [
                    "created_time",
                    "started_time",
                    "updated_time",
                    "finished_time",
                    "duration",
                    "next_delivery_time",
                ]
            },
        ),
    ]
    change_form_template = "admin/squidmesh/workflowrun/change_form.html"
    change_list_template = "admin/squidmesh/workflowrun/change_list.html"

    class Media:
        css = {"all": ["squidmesh/admin/admin.css"]}

    # --- permissions: engine rows are never edited by hand -----------------

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_cancel_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.cancel_workflowrun")

    def has_replay_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.replay_workflowrun")

    # --- list ---------------------------------------------------------------

    def get_changelist(self, request, **kwargs):
        return RunChangeList

    def action_checkbox(self, run):
        # Django renders a CheckboxInput through the template engine for each
        # row, a third of the list's rendering time; the same markup, formatted.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(run.pk),
            format_html(_("Select this object for an action - {}"), str(run)),
        )

    @admin.display(description=gettext_lazy("run"))
    def short_id(self, run):
        return format_html('<code title="{}">{}</code>', run.pk, str(run.pk)[:8])

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, run):
        return status_badge(run.status, run.get_status_display())

    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created(self, run):
        return _timestamp(run.created_at)

    @admin.display(description=gettext_lazy("updated"), ordering="updated_at")
    def updated(self, run):
        return _timestamp(run.updated_at)

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, run):
        return format_duration(run.duration)

    def get_search_results(self, request, queryset, search_term):
        """Match every word: a run id, the start of one (8+ hex digits), or text in the payload.

        A run id prefix becomes a range on the primary key (an index scan);
        only when no run id starts with it is the word searched in payloads,
        which reads every row (see docs/admin.md for the trigram index).
        """
        conditions = []
        for word in smart_split(search_term):
            if word[:1] in {'"', "'"} and word[-1:] == word[:1]:
                word = unescape_string_literal(word)
            if not word:
                continue
            id_range = _run_id_range(word)
            if id_range is not None and WorkflowRun.objects.filter(id_range).exists():
                conditions.append(id_range)
            else:
                conditions.append(Q(payload_text__icontains=word))
        if not conditions:
            return queryset, False
        queryset = queryset.annotate(payload_text=Cast("payload", TextField()))
        return queryset.filter(reduce(and_, conditions)), False

    def lookup_allowed(self, lookup, value, request=None):
        # The "all replays" link of a run detail filters the list by source.
        if lookup in {"replayed_from", "replayed_from__id__exact"}:
            return True
        return super().lookup_allowed(lookup, value, request)

    def changelist_view(self, request, extra_context=None):
        from squidmesh.runtime.dispatcher import get_dispatcher
        from squidmesh.runtime.relay import outbox_status

        extra_context = {
            **(extra_context or {}),
            "workflows_url": reverse("admin:squidmesh_workflowrun_workflows"),
            # Brokers without transactions: how far behind the outbox relay is.
            "outbox": outbox_status() if get_dispatcher().uses_outbox else None,
        }
        return super().changelist_view(request, extra_context)

    # --- actions ------------------------------------------------------------

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        malformed = [value for value in selected if not _is_uuid(value)]
        if malformed:
            self.message_user(
                request,
                _("Not a run id: %(values)s. Nothing was changed.")
                % {"values": ", ".join(repr(value) for value in malformed[:5])},
                messages.ERROR,
            )
            return None
        return super().response_action(request, queryset)

    @admin.action(permissions=["cancel"], description=gettext_lazy("Cancel selected runs"))
    def cancel_runs(self, request, queryset):
        return self._run_action(request, queryset, CANCEL, "cancel_runs")

    @admin.action(permissions=["replay"], description=gettext_lazy("Replay selected runs"))
    def replay_runs(self, request, queryset):
        return self._run_action(request, queryset, REPLAY, "replay_runs")

    def _run_action(self, request, queryset, operation: Operation, action: str):
        # The list defers the JSON columns; the replay preview reads the payload.
        runs = list(queryset.defer(None).newest_first()[: MAX_RUNS_PER_ACTION + 1])
        if len(runs) > MAX_RUNS_PER_ACTION:
            self.message_user(
                request,
                _(
                    "Select at most %(max)d runs for one action (narrow the list with "
                    "filters). Nothing was changed."
                )
                % {"max": MAX_RUNS_PER_ACTION},
                messages.ERROR,
            )
            return None
        if request.POST.get("confirm") == "yes":
            perform(self, request, operation, runs)
            return None
        return render_confirmation(self, request, operation, runs, action=action)

    # --- detail -------------------------------------------------------------

    def get_object(self, request, object_id, from_field=None):
        # Through get_queryset, so a subclass that narrows the runs an
        # operator may see is obeyed; the history comes from the public API.
        run = super().get_object(request, object_id, from_field)
        if run is not None:
            try:
                run.history = api.inspect_run(run.pk, include_history=True).history
            except RunNotFound:  # deleted in between
                return None
        return run

    @admin.display(description=gettext_lazy("run id"))
    def run_id(self, run):
        return format_html("<code>{}</code>", run.pk)

    @admin.display(description=gettext_lazy("workflow"))
    def workflow_link(self, run):
        if not registry.is_registered(run.workflow):
            return format_html(
                '{} <span class="squidmesh-muted">({})</span>', run.workflow, _("not registered")
            )
        url = reverse("admin:squidmesh_workflowrun_workflows")
        return format_html('<a href="{}#workflow-{}">{}</a>', url, run.workflow, run.workflow)

    @admin.display(description=gettext_lazy("created"))
    def created_time(self, run):
        return _timestamp(run.created_at, seconds_fraction=True)

    @admin.display(description=gettext_lazy("started"))
    def started_time(self, run):
        return _timestamp(run.started_at, seconds_fraction=True)

    @admin.display(description=gettext_lazy("updated"))
    def updated_time(self, run):
        return _timestamp(run.updated_at, seconds_fraction=True)

    @admin.display(description=gettext_lazy("finished"))
    def finished_time(self, run):
        return _timestamp(run.finished_at, seconds_fraction=True)

    @admin.display(description=gettext_lazy("next delivery due"))
    def next_delivery_time(self, run):
        return _timestamp(run.scheduled_for, seconds_fraction=True)

    @admin.display(description=gettext_lazy("replay of"))
    def replay_source(self, run):
        if run.replayed_from_id is None:
            return "—"
        url = reverse("admin:squidmesh_workflowrun_change", args=[run.replayed_from_id])
        return format_html('<a href="{}"><code>{}</code></a>', url, run.replayed_from_id)

    @admin.display(description=gettext_lazy("replays"))
    def replays(self, run):
        replays = list(
            run.replays.newest_first().only("id", "status", "created_at")[: MAX_REPLAYS_LISTED + 1]
        )
        if not replays:
            return "—"
        items = format_html_join(
            " ",
            '<span class="squidmesh-replay">{} {}</span>',
            (
                (run_link(replay), status_badge(replay.status))
                for replay in replays[:MAX_REPLAYS_LISTED]
            ),
        )
        if len(replays) > MAX_REPLAYS_LISTED:
            url = reverse("admin:squidmesh_workflowrun_changelist")
            items = format_html(
                '{} <a href="{}?replayed_from__id__exact={}">{}</a>',
                items,
                url,
                run.pk,
                _("all replays"),
            )
        return items

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._run_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _run_context(self, request, run):
        history = getattr(run, "history", None)
        if history is None:  # a run object not loaded through inspect_run
            history = api.inspect_run(run.pk, include_history=True).history
        context = {
            "run": run,
            "history": history,
            "diagram": None,
            "unknown_steps": [],
            "workflow_registered": registry.is_registered(run.workflow),
            "can_cancel": self.has_cancel_permission(request) and not run.is_terminal,
            "can_replay": self.has_replay_permission(request)
            and registry.is_registered(run.workflow),
        }
        if context["workflow_registered"]:
            workflow = registry.get(run.workflow)
            context["diagram"] = render_diagram(
                workflow, RunProgress.of(run, history), dom_id=f"run-{run.pk}"
            )
            context["unknown_steps"] = [
                step_run.step for step_run in history if step_run.step not in workflow.steps
            ]
        return context

    # --- single-run operations and the workflows page -----------------------

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        # Before the defaults: their "<path:object_id>/" would swallow these.
        return [
            path("workflows/", wrap(self.workflows_view), name=f"{prefix}_workflows"),
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name=f"{prefix}_cancel"),
            path("<path:object_id>/replay/", wrap(self.replay_view), name=f"{prefix}_replay"),
            *super().get_urls(),
        ]

    def cancel_view(self, request, object_id):
        return self._single_run_view(request, object_id, CANCEL)

    def replay_view(self, request, object_id):
        return self._single_run_view(request, object_id, REPLAY)

    def _single_run_view(self, request, object_id, operation: Operation):
        allowed = getattr(self, f"has_{operation.permission}_permission")
        if not (self.has_view_permission(request) and allowed(request)):
            raise PermissionDenied
        try:
            run = api.inspect_run(object_id)
        except RunNotFound:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            outcomes = perform(self, request, operation, [run])
            # After a replay, show the new run; otherwise the run acted on.
            target = outcomes.get(run.pk, run) if operation is REPLAY else run
            return HttpResponseRedirect(
                reverse("admin:squidmesh_workflowrun_change", args=[target.pk])
            )
        return render_confirmation(self, request, operation, [run])

    def workflows_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        from squidmesh.schedules import cron_triggers

        # State, next fire time and last failed tick of every cron trigger, in
        # three queries whatever the number of triggers.
        schedules = {(info.workflow, info.trigger): info for info in cron_triggers(runs=1)}
        workflows = []
        for workflow in registry.all():
            definition = workflow.describe()
            for trigger in definition["triggers"]:
                trigger["schedule"] = schedules.get((workflow.name, trigger["name"]))
            workflows.append(
                {
                    "definition": definition,
                    "diagram": render_diagram(workflow, dom_id=f"workflow-diagram-{workflow.name}"),
                    "runs_url": reverse("admin:squidmesh_workflowrun_changelist")
                    + "?"
                    + urlencode({WorkflowFilter.parameter_name: workflow.name}),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Registered workflows"),
            "subtitle": None,
            "opts": self.opts,
            "workflows": workflows,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/squidmesh/workflowrun/workflows.html", context)


def _timestamp(moment, *, seconds_fraction=False):
    # Compact and sortable by eye; the admin's default format is twice as wide.
    if moment is None:
        return "—"
    local = localtime(moment)
    if seconds_fraction:
        text = date_format(local, "Y-m-d H:i:s.u T")
    else:  # strftime: the list renders two per row, date_format costs 5x more
        text = local.strftime("%Y-%m-%d %H:%M:%S")
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), text)


def _run_id_range(word: str) -> Q | None:
    """Return the primary-key range of run ids starting with `word`, if it looks like one."""
    if not RUN_ID_PREFIX.match(word):
        return None
    digits = word.replace("-", "").lower()
    if len(digits) > 32:
        return None
    # UUIDs order like their hex digits on Postgres (uuid) and SQLite (char(32)).
    return Q(pk__gte=uuid.UUID(digits.ljust(32, "0")), pk__lte=uuid.UUID(digits.ljust(32, "f")))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
