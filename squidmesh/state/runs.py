"""Writes to a run as a whole: create it, move its status, advance it, dispatch its steps, delete it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.utils import timezone

from squidmesh import signals
from squidmesh.audit import SYSTEM, Audit, EventKind, EventSource
from squidmesh.conf import settings
from squidmesh.lifecycle import RunStatus, StepStatus
from squidmesh.models import RunEvent, StepAttempt, StepRun, WorkflowRun
from squidmesh.runtime.dispatcher import Dispatch, get_dispatcher
from squidmesh.workflow.steps import COMPLETE, Step

if TYPE_CHECKING:
    from squidmesh.workflow.base import Workflow

__all__ = [
    "StartResult",
    "advance_to",
    "create_run",
    "delete_runs",
    "dispatch_step",
    "due_after",
    "finish_cancellation",
    "hand_over_step",
    "record_events",
    "record_redispatch",
    "run_metadata",
    "save_context",
    "transition_run",
]


@dataclass(frozen=True)
class StartResult:
    """A run a start or replay call returns, and whether that call started it.

    `started_now` is False when the idempotency key matched a run started
    earlier (REST answers 200 instead of 201 then).
    """

    run: WorkflowRun
    started_now: bool


def due_after(delay: float | None, now: datetime | None = None) -> datetime | None:
    """Return when something `delay` seconds from `now` is due, or None for "at once"."""
    if not delay:
        return None
    return (now or timezone.now()) + timedelta(seconds=delay)


def run_metadata(run: WorkflowRun) -> dict[str, Any]:
    """Return the run's fields every lifecycle signal carries."""
    return {
        "run_id": str(run.pk),
        "workflow": run.workflow,
        "trigger": run.trigger,
        "status": run.status,
        "current_step": run.current_step,
    }


@transaction.atomic
def create_run(
    definition: type[Workflow],
    trigger: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    replayed_from: WorkflowRun | None = None,
    initial_context: Mapping[str, Any] | None = None,
    audit: Audit | None = None,
) -> WorkflowRun:
    """Insert a `pending` run at the entry step, its audit events, and dispatch the entry step.

    Raise `IntegrityError` when a run with the same workflow and
    `idempotency_key` exists (the caller looks it up).
    """
    entry = definition.steps[definition.entry_step]
    now = timezone.now()
    due = due_after(entry.delay_before(payload), now)
    run = WorkflowRun.objects.create(
        id=uuid.uuid4(),
        workflow=definition.name,
        trigger=trigger,
        status=RunStatus.PENDING,
        payload=payload,
        context=dict(initial_context or {}),
        current_step=entry.name,
        idempotency_key=idempotency_key,
        replayed_from=replayed_from,
        scheduled_for=due,
        created_at=now,
        updated_at=now,
    )
    audit = audit or Audit()
    if replayed_from is None:
        record_events([audit.event(run, EventKind.STARTED)])
    else:
        # Both ends of the replay in one INSERT.
        record_events(
            [
                audit.event(replayed_from, EventKind.REPLAYED, replay=str(run.pk)),
                audit.event(run, EventKind.REPLAY_OF, source=str(replayed_from.pk)),
            ]
        )
    metadata = run_metadata(run)
    signals.send_after_commit(signals.run_created, run.workflow, **metadata)
    if replayed_from is not None:
        signals.send_after_commit(
            signals.run_replayed, run.workflow, **metadata, replayed_from=str(replayed_from.pk)
        )
    dispatch_step(run, entry, 1, due)
    return run


def record_events(events: list[RunEvent]) -> None:
    """Insert audit events; call it inside the transaction of the state change they record."""
    if len(events) == 1:
        events[0].save(force_insert=True)
    else:
        RunEvent.objects.bulk_create(events)


def transition_run(run: WorkflowRun, target: str, **changes: Any) -> None:
    """Change the run's status (lifecycle-checked compare-and-set) and signal it."""
    previous = run.status
    WorkflowRun.objects.transition(run, target, **changes)
    signals.send_after_commit(
        signals.run_transition,
        run.workflow,
        **run_metadata(run),
        from_status=previous,
        to_status=target,
    )


def finish_cancellation(run: WorkflowRun, **changes: Any) -> None:
    """Make a run `cancelled` (inside its lock); a step waiting to retry is cancelled too."""
    StepRun.objects.filter(run=run, status=StepStatus.RETRYING).update(
        status=StepStatus.CANCELLED, finished_at=timezone.now()
    )
    transition_run(run, RunStatus.CANCELLED, scheduled_for=None, **changes)


def advance_to(
    run: WorkflowRun, workflow: type[Workflow], target: str | None, **changes: Any
) -> None:
    """Move `run` to step `target` (or complete it) and dispatch that step in this transaction."""
    if target is None or target == COMPLETE:
        transition_run(run, RunStatus.COMPLETED, current_step=None, scheduled_for=None, **changes)
        return
    step = workflow.steps[target]
    due = due_after(step.delay_before({**run.payload, **run.context, **changes.get("context", {})}))
    WorkflowRun.objects.save_progress(run, current_step=target, scheduled_for=due, **changes)
    dispatch_step(run, step, 1, due)


def dispatch_step(run: WorkflowRun, step: Step | str, attempt: int, due: datetime | None) -> None:
    """Queue attempt `attempt` of `step` (a step, or the name of one no longer defined)."""
    name, timeout = (step, None) if isinstance(step, str) else (step.name, step.timeout)
    task_id = get_dispatcher().dispatch(
        Dispatch(
            run_id=str(run.pk),
            workflow=run.workflow,
            step=name,
            attempt=attempt,
            due=due,
            timeout=timeout,
        )
    )
    schedule_in = max((due - timezone.now()).total_seconds(), 0.0) if due else 0.0
    signals.send_after_commit(
        signals.run_dispatched,
        run.workflow,
        **run_metadata(run),
        step=name,
        attempt=attempt,
        job_id=task_id,
        queue=settings.CLUSTER,
        schedule_in=schedule_in,
    )


def hand_over_step(run: WorkflowRun, step: Step, row_id: int) -> bool:
    """Rewrite the queue row this worker holds (`row_id`) to carry attempt 1 of `step`.

    The inline continuation: the row gets a fresh lease instead of a new
    row being queued. Return False when the broker cannot (dispatch then).
    """
    work = Dispatch(
        run_id=str(run.pk), workflow=run.workflow, step=step.name, attempt=1, timeout=step.timeout
    )
    task_id = get_dispatcher().hand_over(work, row_id)
    if task_id is None:
        return False
    signals.send_after_commit(
        signals.run_dispatched,
        run.workflow,
        **run_metadata(run),
        step=step.name,
        attempt=1,
        job_id=task_id,
        queue=settings.CLUSTER,
        schedule_in=0.0,
    )
    return True


def save_context(run: WorkflowRun, context: dict[str, Any]) -> None:
    """Record the context of a run that ended meanwhile (compare-and-set on its status)."""
    WorkflowRun.objects.filter(pk=run.pk, status=run.status).update(context=context)


def record_redispatch(run: WorkflowRun, step: Step | str, attempt: int) -> None:
    """Queue again the delivery a run waits for (the recovery sweep, inside the run's lock).

    Moving `updated_at` makes the run a candidate again only one sweep
    period later; the `redispatched` event shows why a step ran again.
    """
    dispatch_step(run, step, attempt, None)
    WorkflowRun.objects.save_progress(run)
    record_events(
        [
            Audit(actor=SYSTEM, source=EventSource.RECOVERY).event(
                run, EventKind.REDISPATCHED, step=run.current_step, attempt=attempt
            )
        ]
    )


@dataclass
class Deleted:
    """Rows `delete_runs` removed, by table."""

    runs: int = 0
    step_runs: int = 0
    attempts: int = 0


def delete_runs(run_ids: Iterable[Any], using: str = "default") -> Deleted:
    """Delete runs with their step runs, attempts and events (inside the caller's transaction).

    Replays of a deleted run stay; only their link goes.
    """
    connection = connections[using]
    pk = WorkflowRun._meta.pk
    assert pk is not None
    values = [pk.get_db_prep_value(run_id, connection) for run_id in run_ids]
    deleted = Deleted()
    if not values:
        return deleted
    marks = ", ".join(["%s"] * len(values))
    table = {
        model: connection.ops.quote_name(model._meta.db_table)
        for model in (RunEvent, StepAttempt, StepRun, WorkflowRun)
    }
    # Plain statements, children first: Django's cascading delete loads
    # every step run into memory and was 28x slower (benchmarks/maintenance.py).
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table[RunEvent]} WHERE run_id IN ({marks})", values)
        cursor.execute(f"DELETE FROM {table[StepAttempt]} WHERE run_id IN ({marks})", values)
        deleted.attempts = cursor.rowcount
        cursor.execute(f"DELETE FROM {table[StepRun]} WHERE run_id IN ({marks})", values)
        deleted.step_runs = cursor.rowcount
        cursor.execute(
            f"UPDATE {table[WorkflowRun]} SET replayed_from_id = NULL "
            f"WHERE replayed_from_id IN ({marks})",
            values,
        )
        cursor.execute(f"DELETE FROM {table[WorkflowRun]} WHERE id IN ({marks})", values)
        deleted.runs = cursor.rowcount
    return deleted
