"""Template filters of the squidmesh admin pages: badges, durations, pretty JSON, errors."""

from __future__ import annotations

from datetime import datetime

from django import template

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
def status_badge(status, label=None):
    """Render a status as a coloured badge: `{{ run.status|status_badge }}`."""
    return display.status_badge(status, label)


@register.filter
def pretty_json(value):
    return display.pretty_json(value)


@register.filter
def error_summary(error):
    return display.error_summary(error) if error else ""


@register.filter
def duration(value):
    return display.format_duration(value)


@register.filter
def duration_until(start: datetime | None, end: datetime | None):
    """Render the time from `start` to `end`: `{{ step_run.created_at|duration_until:step_run.finished_at }}`."""
    if start is None or end is None:
        return "—"
    return display.format_duration(end - start)


@register.filter
def thousands(value):
    """Render an integer with thousands separators (`1,000,000`) without needing humanize."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value
