"""Django admin for failed cron ticks: the starts a schedule could not make."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from squidmesh.models import CronTickFailure

__all__ = ["CronTickFailureAdmin"]


@admin.register(CronTickFailure)
class CronTickFailureAdmin(admin.ModelAdmin):
    """Read-only: rows are written by `squidmesh.cron_schedules.ticks.fire` when a tick cannot start."""

    list_display = ["workflow", "trigger", "intended_at", "occurred_at", "message"]
    list_filter = ["workflow", "trigger"]
    readonly_fields = ["workflow", "trigger", "intended_at", "occurred_at", "error_json"]
    fields = ["workflow", "trigger", "intended_at", "occurred_at", "error_json"]
    show_full_result_count = False

    @admin.display(description="error")
    def message(self, failure: CronTickFailure) -> str:
        return (failure.error or {}).get("message", "")

    @admin.display(description="error")
    def error_json(self, failure: CronTickFailure) -> str:
        return format_html("<pre>{}</pre>", json.dumps(failure.error, indent=2, sort_keys=True))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Operators may clear failures they have dealt with; they are a log, not engine state.
        return super().has_delete_permission(request, obj)
