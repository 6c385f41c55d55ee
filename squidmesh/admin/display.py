"""How engine values look in the admin: status badges, durations, timestamps, pretty JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

__all__ = ["error_summary", "format_duration", "pretty_json", "status_badge", "timestamp"]

#: Longest JSON text rendered on a page; a context may hold up to
#: `SQUIDMESH['MAX_STEP_OUTPUT_BYTES']` per step, which would stall the browser.
MAX_JSON_CHARS = 100_000


def status_badge(status: str | None, label: str | None = None) -> SafeString:
    """Return a coloured badge for a run, step or attempt status (CSS in squidmesh/admin/admin.css)."""
    if not status:
        return format_html('<span class="squidmesh-badge squidmesh-status-none">{}</span>', "—")
    return format_html(
        '<span class="squidmesh-badge squidmesh-status-{}">{}</span>', status, label or status
    )


def format_duration(duration: timedelta | None) -> str:
    """Return `duration` for humans: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`, `3 d 4 h`."""
    if duration is None:
        return "—"
    seconds = duration.total_seconds()
    if seconds < 0:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def pretty_json(value: Any) -> SafeString:
    """Return `value` as indented JSON in a `<pre>`, escaped and cut at `MAX_JSON_CHARS`."""
    if value is None:
        return format_html('<span class="squidmesh-muted">{}</span>', "—")
    text = json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
    if len(text) > MAX_JSON_CHARS:
        omitted = len(text) - MAX_JSON_CHARS
        text = f"{text[:MAX_JSON_CHARS]}\n… ({omitted} more characters not shown)"
    return format_html('<pre class="squidmesh-json">{}</pre>', text)


def error_summary(error: Any) -> str:
    """Return a recorded error (`{"type": ..., "message": ...}`) as one line."""
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        if kind and message:
            return f"{kind}: {message}"
        return str(message or kind or error)
    return str(error)


def timestamp(moment: datetime | None, *, seconds_fraction: bool = False) -> SafeString | str:
    """Return `moment` in local time as a `<time>` element ("—" for None)."""
    # Compact and sortable by eye; the admin's default format is twice as wide.
    if moment is None:
        return "—"
    local = localtime(moment)
    if seconds_fraction:
        text = date_format(local, "Y-m-d H:i:s.u T")
    else:  # strftime: the list renders two per row, date_format costs 5x more
        # Date and time may go on two lines, never break inside either.
        return format_html(
            '<time datetime="{}"><span>{}</span> <span>{}</span></time>',
            moment.isoformat(),
            local.strftime("%Y-%m-%d"),
            local.strftime("%H:%M:%S"),
        )
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), text)
