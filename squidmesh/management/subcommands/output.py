"""How `manage.py squidmesh` prints: JSON, tables, a run with its history, local times."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from squidmesh.management.tables import render_table
from squidmesh.management.terminal import printable
from squidmesh.models import StepAttempt, WorkflowRun

__all__ = ["indent", "local", "seconds", "write_json", "write_run"]


def write_json(command: BaseCommand, data: Any) -> None:
    command.stdout.write(json.dumps(data, indent=2, cls=DjangoJSONEncoder))


def describe_run_outbox(outbox: dict[str, Any]) -> str:
    waiting = ", ".join(
        f"{m['step']}#{m['attempt']} due {local(m['due_at'])}"
        + (
            f" (broker refused {m['failed_handovers']}x: {m['last_error']})"
            if m["failed_handovers"]
            else ""
        )
        for m in outbox["messages"]
    )
    return f"{waiting or 'nothing waiting'}; relay lag {outbox['lag']:.1f} s"


def write_run(command: BaseCommand, run: WorkflowRun, outbox: dict[str, Any] | None = None) -> None:
    """Print a run returned by `inspect_run(..., include_history=True)`."""
    rows = [
        ("Run", run.pk),
        ("Workflow", run.workflow),
        ("Trigger", run.trigger),
        ("Status", run.status),
        ("Current step", run.current_step),
        ("Created", local(run.created_at)),
        ("Started", local(run.started_at)),
        ("Finished", local(run.finished_at)),
        ("Next delivery", local(run.scheduled_for)),
        ("Duration", seconds(run.duration)),
        ("Replayed from", run.replayed_from_id),
        ("Idempotency key", run.idempotency_key),
        ("Payload", json.dumps(run.payload, cls=DjangoJSONEncoder)),
        ("Context", json.dumps(run.context, cls=DjangoJSONEncoder)),
        ("Last error", run.last_error["message"] if run.last_error else None),
    ]
    if outbox is not None:
        rows.append(("Outbox", describe_run_outbox(outbox)))
    width = max(len(label) for label, _ in rows)
    lines = [
        f"{label.ljust(width)}  {'-' if value is None else printable(value)}"
        for label, value in rows
    ]
    lines += ["", "History"]
    history = []
    for step_run in run.history:
        # A step run not yet attempted still gets its row.
        attempts: list[StepAttempt | None] = list(step_run.attempts.all()) or [None]
        for index, attempt in enumerate(attempts):
            first = index == 0
            history.append(
                (
                    step_run.position if first else "",
                    step_run.step if first else "",
                    step_run.status if first else "",
                    attempt.number if attempt is not None else None,
                    attempt.status if attempt is not None else None,
                    local(attempt.started_at) if attempt is not None else None,
                    seconds(attempt.duration) if attempt is not None else None,
                    (attempt.error or {}).get("message") if attempt is not None else None,
                )
            )
    if history:
        lines += indent(
            render_table(
                ["#", "STEP", "STATUS", "ATTEMPT", "RESULT", "STARTED", "TOOK", "ERROR"],
                history,
            )
        )
    else:
        lines.append("  (no step has run yet)")
    lines += ["", "Events"]
    events = [
        (
            local(event.created_at),
            event.kind,
            event.actor,
            event.source,
            event.reason or None,
            json.dumps(event.data, cls=DjangoJSONEncoder) if event.data else None,
        )
        for event in run.events.all()
    ]
    if events:
        lines += indent(
            render_table(["WHEN", "EVENT", "ACTOR", "SOURCE", "REASON", "DATA"], events)
        )
    else:
        lines.append("  (no events recorded)")
    command.stdout.write("\n".join(lines))


def local(value: datetime | None) -> str | None:
    return None if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: timedelta | None) -> str | None:
    return None if value is None else f"{value.total_seconds():.3f}s"


def indent(text: str) -> list[str]:
    return [f"  {line}" for line in text.splitlines()]
