"""The run page of the admin: its fields, history, diagram and replays."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from squidmesh import api
from squidmesh.admin.diagram import RunProgress, render_diagram
from squidmesh.admin.display import status_badge, timestamp
from squidmesh.admin.mixin_base import RunAdminMixinBase
from squidmesh.admin.operations import run_link
from squidmesh.exceptions import RunNotFound
from squidmesh.registry import registry

__all__ = ["RunDetailMixin"]

#: Shown in the run detail; later replays are reached through the filtered list.
MAX_REPLAYS_LISTED = 20
#: How often the page of an active run reloads itself while its toggle is on.
AUTO_REFRESH_SECONDS = 5


class RunDetailMixin(RunAdminMixinBase):
    """The change-form half of `WorkflowRunAdmin` (read-only: a run is never edited)."""

    def get_object(self, request, object_id, from_field=None):
        # Through get_queryset, so a subclass that narrows the runs an
        # operator may see is obeyed; the run shown comes from the public API,
        # with its history and events loaded.
        run = super().get_object(request, object_id, from_field)
        if run is None:
            return None
        try:
            return api.inspect_run(run.pk, include_history=True)
        except RunNotFound:  # deleted in between
            return None

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
        return timestamp(run.created_at, seconds_fraction=True)

    @admin.display(description=gettext_lazy("started"))
    def started_time(self, run):
        return timestamp(run.started_at, seconds_fraction=True)

    @admin.display(description=gettext_lazy("updated"))
    def updated_time(self, run):
        return timestamp(run.updated_at, seconds_fraction=True)

    @admin.display(description=gettext_lazy("finished"))
    def finished_time(self, run):
        return timestamp(run.finished_at, seconds_fraction=True)

    @admin.display(description=gettext_lazy("next delivery due"))
    def next_delivery_time(self, run):
        return timestamp(run.scheduled_for, seconds_fraction=True)

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
        # Prefetched on a run from inspect_run (get_object), else one query.
        events = list(run.events.all())
        context = {
            "run": run,
            "history": history,
            "events": events,
            "diagram": None,
            "unknown_steps": [],
            "workflow_registered": registry.is_registered(run.workflow),
            "auto_refresh_seconds": None if run.is_terminal else AUTO_REFRESH_SECONDS,
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
