"""Operations on runs from the admin: cancel and replay (bulk and single), the workflows page."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from squidmesh import api
from squidmesh.admin.diagram import render_diagram
from squidmesh.admin.filters import WorkflowFilter
from squidmesh.admin.mixin_base import RunAdminMixinBase
from squidmesh.admin.operations import (
    CANCEL,
    MAX_RUNS_PER_ACTION,
    REPLAY,
    Operation,
    perform,
    render_confirmation,
)
from squidmesh.exceptions import RunNotFound
from squidmesh.registry import registry

__all__ = ["RunActionsMixin"]


class RunActionsMixin(RunAdminMixinBase):
    """The operations half of `WorkflowRunAdmin`: every change goes through the public API."""

    def has_cancel_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.cancel_workflowrun")

    def has_replay_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.replay_workflowrun")

    # --- actions ------------------------------------------------------------

    def response_action(self, request, queryset, *args, **kwargs):
        # Django 6.1 passes `action_location` (change-form actions); pass on what we get.
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        malformed = [value for value in selected if not is_uuid(value)]
        if malformed:
            self.message_user(
                request,
                _("Not a run id: %(values)s. Nothing was changed.")
                % {"values": ", ".join(repr(value) for value in malformed[:5])},
                messages.ERROR,
            )
            return None
        return super().response_action(request, queryset, *args, **kwargs)

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
            # The admin's own "does not exist" redirect; private, so not in django-stubs.
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
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
        from squidmesh.cron_schedules.read_model import cron_triggers

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


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
