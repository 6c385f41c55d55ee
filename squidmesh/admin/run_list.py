"""The run list of the admin: its query, columns, search and NUL-safe filters."""

from __future__ import annotations

import re
from functools import reduce
from operator import and_

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Substr
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from squidmesh.admin.display import format_duration, status_badge, timestamp
from squidmesh.admin.mixin_base import RunAdminMixinBase
from squidmesh.models import WorkflowRun
from squidmesh.querysets import run_id_range

__all__ = ["RunChangeList", "RunListMixin", "breakable"]

#: The JSON columns are not shown in the list; a context may be megabytes.
LIST_DEFERRED_FIELDS = ("payload", "context", "last_error")
#: Characters of the last error's message read for the list (the tooltip);
#: the cell shows fewer (CSS ellipsis), the run page shows it all.
LIST_ERROR_CHARS = 300


class RunChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        refuse_nul_parameters(request)
        queryset = super().get_queryset(request, exclude_parameters)
        # The error's type and the start of its message, in the list's own
        # query: its details (a traceback, a response body) are never read.
        return queryset.defer(*LIST_DEFERRED_FIELDS).annotate(
            last_error_type=Substr(KT("last_error__type"), 1, 100),
            last_error_message=Substr(KT("last_error__message"), 1, LIST_ERROR_CHARS),
        )


class RunListMixin(RunAdminMixinBase):
    """The changelist half of `WorkflowRunAdmin`."""

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

    @admin.display(description=gettext_lazy("workflow / trigger"))
    def workflow_name(self, run):
        # One column for both, and a name may break after a dot: the list
        # must fit a 1,366 px screen beside both sidebars.
        return format_html(
            '{}<br><span class="squidmesh-trigger">{}</span>',
            breakable(run.workflow),
            breakable(run.trigger),
        )

    @admin.display(description=gettext_lazy("current step"))
    def current_step_name(self, run):
        return breakable(run.current_step) if run.current_step else "-"

    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created(self, run):
        return timestamp(run.created_at)

    @admin.display(description=gettext_lazy("updated"), ordering="updated_at")
    def updated(self, run):
        return timestamp(run.updated_at)

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, run):
        return format_duration(run.duration)

    @admin.display(description=gettext_lazy("last error"))
    def last_error_summary(self, run):
        kind = getattr(run, "last_error_type", None)
        message = getattr(run, "last_error_message", None)
        if not (kind or message):
            return "—"
        # The message says most in little room; the tooltip adds the type.
        full = f"{kind}: {message}" if kind and message else (message or kind)
        # A completed run's error is from an earlier attempt it recovered from.
        css = "squidmesh-list-error" + (" squidmesh-muted" if run.status == "completed" else "")
        return format_html('<span class="{}" title="{}">{}</span>', css, full, message or kind)

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
            id_range = run_id_range(word)
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


def breakable(name: str) -> SafeString:
    """Return `name` escaped, allowed to wrap after each dot and underscore (`<wbr>`)."""
    parts = re.split(r"(?<=[._])", name)
    return format_html_join(mark_safe("<wbr>"), "{}", ((part,) for part in parts))


def refuse_nul_parameters(request) -> None:
    """Raise `IncorrectLookupParameters` (the admin redirects to `?e=1`) if a parameter holds NUL.

    PostgreSQL text cannot hold NUL, so a filter or search on it raises
    DataError (a 500) instead of matching nothing.
    """
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            label = name.replace("\x00", "\\x00")
            messages.error(
                request,
                _(
                    "The list is shown unfiltered: parameter “%(name)s” contains a NUL "
                    "character, which no run can match."
                )
                % {"name": label},
            )
            raise IncorrectLookupParameters(f"NUL character in parameter {label!r}")
