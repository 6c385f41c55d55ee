"""JSON-ready representations of runs and workflows, shared by the commands and the REST API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

if TYPE_CHECKING:
    from squidmesh.models import RunEvent, StepAttempt, StepRun, WorkflowRun
    from squidmesh.workflow.base import Workflow

__all__ = [
    "attempt_detail",
    "event_detail",
    "run_detail",
    "run_summary",
    "step_run_detail",
    "workflow_summary",
]


def run_summary(run: WorkflowRun) -> dict[str, Any]:
    """Return the run's list representation: identity, status and timestamps.

    Reads no relation and none of the JSON columns, so listing N runs costs
    one query.
    """
    return {
        "id": str(run.pk),
        "workflow": run.workflow,
        "trigger": run.trigger,
        "status": run.status,
        "current_step": run.current_step,
        "idempotency_key": run.idempotency_key,
        "replayed_from": str(run.replayed_from_id) if run.replayed_from_id else None,
        "created_at": _timestamp(run.created_at),
        "updated_at": _timestamp(run.updated_at),
        "started_at": _timestamp(run.started_at),
        "finished_at": _timestamp(run.finished_at),
        "scheduled_for": _timestamp(run.scheduled_for),
        "duration_seconds": _seconds(run.duration),
    }


def run_detail(run: WorkflowRun, *, include_history: bool = False) -> dict[str, Any]:
    """Return the summary plus payload, context, last error, history and events.

    `history` and `events` (the audit trail, oldest first) are None unless
    `include_history`, which needs a run returned by
    `inspect_run(..., include_history=True)`.
    """
    history = events = None
    if include_history:
        history = [step_run_detail(step_run) for step_run in run.history]
        events = [event_detail(event) for event in run.events.all()]
    return {
        **run_summary(run),
        "payload": run.payload,
        "context": run.context,
        "last_error": run.last_error,
        "history": history,
        "events": events,
    }


def step_run_detail(step_run: StepRun) -> dict[str, Any]:
    return {
        "step": step_run.step,
        "position": step_run.position,
        "status": step_run.status,
        "attempt_count": step_run.attempt_count,
        "output": step_run.output,
        "note": step_run.note,
        "last_error": step_run.last_error,
        "created_at": _timestamp(step_run.created_at),
        "finished_at": _timestamp(step_run.finished_at),
        "attempts": [attempt_detail(attempt) for attempt in step_run.attempts.all()],
    }


def attempt_detail(attempt: StepAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "status": attempt.status,
        "error": attempt.error,
        "due_at": _timestamp(attempt.due_at),
        "started_at": _timestamp(attempt.started_at),
        "finished_at": _timestamp(attempt.finished_at),
        "duration_seconds": _seconds(attempt.duration),
        "worker": attempt.worker,
    }


def event_detail(event: RunEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "actor": event.actor,
        "source": event.source,
        "reason": event.reason,
        "data": event.data,
        "created_at": _timestamp(event.created_at),
    }


def workflow_summary(workflow: type[Workflow]) -> dict[str, Any]:
    """Return a registered workflow's name, description, triggers and steps by name.

    The full definition is `workflow.describe()`.
    """
    definition = workflow.describe()
    return {
        "name": definition["name"],
        "description": definition["description"],
        "entry_step": definition["entry_step"],
        "triggers": [trigger["name"] for trigger in definition["triggers"]],
        "steps": [step["name"] for step in definition["steps"]],
    }


def _timestamp(value: datetime | None) -> str | None:
    # The format of Django REST framework's DateTimeField, so that the API
    # and `manage.py squidmesh --json` print the same strings.
    if value is None:
        return None
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()
