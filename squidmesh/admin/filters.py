"""Changelist filters whose choices come from the workflow registry, not from the runs table."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from squidmesh.registry import registry

__all__ = ["TriggerFilter", "WorkflowFilter"]


class WorkflowFilter(admin.SimpleListFilter):
    """Filter runs by workflow name.

    Choices are the registered workflows: a DISTINCT over the runs table
    would scan every row. Runs of a workflow no longer registered are still
    reachable with `?workflow=<name>`.
    """

    title = _("workflow")
    parameter_name = "workflow"

    def lookups(self, request, model_admin):
        choices = [(name, name) for name in registry.names()]
        value = self.value()
        if value and value not in registry.names():
            choices.append((value, _("%(name)s (not registered)") % {"name": value}))
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.for_workflow(value) if value else queryset


class TriggerFilter(admin.SimpleListFilter):
    """Filter runs by trigger name; the choices follow the selected workflow, if any."""

    title = _("trigger")
    parameter_name = "trigger"

    def lookups(self, request, model_admin):
        workflow = request.GET.get(WorkflowFilter.parameter_name)
        definitions = (
            [registry.get(workflow)]
            if workflow and registry.is_registered(workflow)
            else registry.all()
        )
        names = sorted(
            {trigger.name for definition in definitions for trigger in definition.triggers}
        )
        value = self.value()
        if value and value not in names:
            names.append(value)
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(trigger=value) if value else queryset
