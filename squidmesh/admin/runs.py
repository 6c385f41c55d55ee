"""The admin of workflow runs: `WorkflowRunAdmin`, assembled from its list, detail and actions.

- `run_list`: the changelist (query, columns, search);
- `run_detail`: the run page (fields, history, diagram, replays);
- `run_actions`: cancel and replay, bulk and single, and the workflows page.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy

from squidmesh.admin.filters import TriggerFilter, WorkflowFilter
from squidmesh.admin.pagination import RunPaginator
from squidmesh.admin.run_actions import RunActionsMixin
from squidmesh.admin.run_detail import RunDetailMixin
from squidmesh.admin.run_list import RunListMixin
from squidmesh.models import WorkflowRun

__all__ = ["WorkflowRunAdmin"]


@admin.register(WorkflowRun)
class WorkflowRunAdmin(RunActionsMixin, RunDetailMixin, RunListMixin, admin.ModelAdmin):
    """Inspect and steer runs; every change goes through `squidmesh.cancel_run` / `replay_run`."""

    list_display = [
        "short_id",
        "status_badge",
        "workflow_name",
        "current_step_name",
        "created",
        "updated",
        "duration",
        "last_error_summary",
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
