"""Template filters of the squidmesh admin pages: badges, durations, pretty JSON, errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils.safestring import SafeString

from squidmesh.admin import display

__all__ = [
    "duration",
    "duration_until",
    "error_summary",
    "pretty_json",
    "status_badge",
    "thousands",
]

register = template.Library()


@register.filter
def status_badge(status: str | None, label: str | None = None) -> SafeString:
    """Render a status as a coloured badge: `{{ run.status|status_badge }}`."""
    return display.status_badge(status, label)


@register.filter
def pretty_json(value: Any) -> SafeString:
    return display.pretty_json(value)


@register.filter
def error_summary(error: Any) -> str:
    return display.error_summary(error) if error else ""


@register.filter
def duration(value: timedelta | None) -> str:
    return display.format_duration(value)


@register.filter
def duration_until(start: datetime | None, end: datetime | None) -> str:
    """Render the time from `start` to `end`: `{{ step_run.created_at|duration_until:step_run.finished_at }}`."""
    if start is None or end is None:
        return "—"
    return display.format_duration(end - start)


@register.filter
def thousands(value: Any) -> Any:
    """Render an integer with thousands separators (`1,000,000`) without needing humanize."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value
