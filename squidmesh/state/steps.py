"""Writes to step runs and attempts: open an attempt, close it, record success or failure, retry."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from squidmesh import signals
from squidmesh.conf import settings
from squidmesh.exceptions import DeliveryDeferred, UnknownWorkflow
from squidmesh.lifecycle import AttemptStatus, RunStatus, StepStatus
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.registry import registry
from squidmesh.runtime import retry
from squidmesh.state.claims import presumed_dead
from squidmesh.state.runs import (
    advance_to,
    dispatch_step,
    due_after,
    run_metadata,
    transition_run,
)
from squidmesh.workflow.steps import Step

if TYPE_CHECKING:
    from squidmesh.workflow.base import Workflow

__all__ = [
    "WORKER",
    "cancel_dead_attempt",
    "close_attempt",
    "end_step_run",
    "fail_removed_step",
    "interrupt_attempt",
    "open_attempt",
    "record_failure",
    "record_interruption",
    "record_success",
    "schedule_retry",
]

logger = logging.getLogger("squidmesh.runtime")

#: How attempts name the worker that ran them (`host:pid`).
WORKER = f"{socket.gethostname()}:{os.getpid()}"

#: Step run statuses after which no attempt of the step runs again.
ENDED = (StepStatus.COMPLETED, StepStatus.FAILED)


def open_attempt(
    run: WorkflowRun,
    step: str,
    number: int,
    step_run: StepRun | None,
    position: int,
    now: datetime,
) -> tuple[StepRun, StepAttempt]:
    """Record attempt `number` of `step` as running (inside the run's lock)."""
    if step_run is None:
        step_run = StepRun.objects.create(
            run=run,
            step=step,
            position=position,
            status=StepStatus.RUNNING,
            attempt_count=number,
            created_at=now,
        )
    else:
        step_run.status, step_run.attempt_count = StepStatus.RUNNING, number
        StepRun.objects.filter(pk=step_run.pk).update(
            status=step_run.status, attempt_count=step_run.attempt_count
        )
    attempt = StepAttempt.objects.create(
        step_run=step_run,
        run=run,
        number=number,
        status=AttemptStatus.RUNNING,
        due_at=run.scheduled_for,
        started_at=now,
        heartbeat_at=now,
        worker=WORKER,
    )
    return step_run, attempt


def close_attempt(attempt: StepAttempt, status: str, **changes: Any) -> bool:
    """Close a `running` attempt (compare-and-set); return False if it was closed already."""
    return StepAttempt.objects.close(attempt, status, **changes)


def interrupt_attempt(attempt: StepAttempt) -> bool:
    """Close a `running` attempt whose worker is presumed dead as `interrupted`."""
    error = {
        "type": "Interrupted",
        "message": f"worker {attempt.worker} stopped during the attempt",
        "retryable": True,
    }
    return StepAttempt.objects.close(attempt, AttemptStatus.INTERRUPTED, error=error)


def record_success(
    step_run: StepRun,
    output: dict[str, Any],
    note: dict[str, Any] | None,
    finished_at: datetime | None,
) -> None:
    """Mark the step run `completed` with the output of its succeeded attempt."""
    StepRun.objects.filter(pk=step_run.pk).update(
        status=StepStatus.COMPLETED, output=output, note=note, finished_at=finished_at
    )


def end_step_run(
    step_run: StepRun | Any,
    status: str,
    error: dict[str, Any] | None,
    finished_at: datetime | None = None,
) -> None:
    """End a step run (`failed` or `cancelled`) unless it already completed or failed.

    `step_run` is a step run or its primary key.
    """
    pk = step_run.pk if isinstance(step_run, StepRun) else step_run
    StepRun.objects.filter(pk=pk).exclude(status__in=ENDED).update(
        status=status, last_error=error, finished_at=finished_at or timezone.now()
    )


def fail_removed_step(run: WorkflowRun, step_name: str) -> str:
    """Fail a run whose current step a deploy removed: no worker can run it any more.

    Its step run and an attempt a dead worker left open end with the run,
    so that nothing is shown as still retrying or running. Raise
    `DeliveryDeferred` while that attempt may still be live (an old
    worker finishing the step): its redelivery fails the run. Return the
    message the run failed with.
    """
    message = (
        f"step {step_name!r} no longer exists in workflow {run.workflow!r} "
        "(a deploy removed it while the run was at it)"
    )
    error = {"type": "UnknownStep", "message": message}
    step_run = StepRun.objects.filter(pk=run.step_run_id).first() if run.step_run_id else None
    if step_run is not None:
        running = step_run.attempts.filter(status=AttemptStatus.RUNNING).first()
        if running is not None:
            if not presumed_dead(running, None):
                raise DeliveryDeferred(
                    f"Attempt {running.number} of removed step {step_name!r} in run "
                    f"{run.pk} is still running in another worker."
                )
            interrupt_attempt(running)
        end_step_run(step_run, StepStatus.FAILED, error)
    transition_run(run, RunStatus.FAILED, last_error=error, scheduled_for=None)
    logger.warning(
        "Run %s failed: %s.",
        run.pk,
        message,
        extra={"run_id": str(run.pk), "workflow": run.workflow, "step": step_name},
    )
    return message


def cancel_dead_attempt(run: WorkflowRun) -> None:
    """Close the attempt a dead worker left running before a cancelling run ends.

    Raise `DeliveryDeferred` while that attempt may still be live: its
    worker records it and finishes the cancellation itself.
    """
    running = StepAttempt.objects.running().filter(run=run).select_related("step_run").first()
    if running is None:
        return
    try:
        step = registry.get(run.workflow).steps.get(running.step_run.step)
    except UnknownWorkflow:
        step = None
    if not presumed_dead(running, step):
        raise DeliveryDeferred(
            f"Attempt {running.number} of {running.step_run.step!r} in run {run.pk} is "
            "still running in another worker."
        )
    interrupt_attempt(running)
    StepRun.objects.filter(pk=running.step_run_id).update(
        status=StepStatus.CANCELLED, last_error=running.error, finished_at=running.finished_at
    )


def record_failure(
    run: WorkflowRun,
    workflow: type[Workflow],
    step: Step,
    step_run: StepRun,
    error: dict[str, Any] | None,
    *,
    retryable: bool,
) -> str:
    """Apply the step's retry policy to a failed attempt (inside the run's lock).

    Attempts a dead worker left behind do not count against `max_attempts`.
    """
    attempt = step_run.attempt_count or 1
    interrupted = _interruptions(step_run) if attempt > 1 else 0
    decision = retry.decide(
        step.retry, attempt - interrupted, retryable=retryable, retry_after=_retry_after(error)
    )
    if decision.retry:
        schedule_retry(run, step, step_run, error, decision.delay)
        return f"failed; retry {attempt + 1} in {decision.delay:.3f}s"
    StepRun.objects.filter(pk=step_run.pk).update(
        status=StepStatus.FAILED, last_error=error, finished_at=timezone.now()
    )
    target = workflow.next_step(step.name, "error")
    if target:
        if run.status == RunStatus.RETRYING:
            transition_run(run, RunStatus.RUNNING, last_error=error)
        advance_to(run, workflow, target, last_error=error)
        return f"failed ({decision.reason}); on error -> {target}"
    transition_run(run, RunStatus.FAILED, last_error=error, current_step=step.name)
    return f"failed ({decision.reason}); run failed"


def _retry_after(error: dict[str, Any] | None) -> float | None:
    """Return the wait the failure asked for (`StepFailure.retry_after`), capped."""
    value = (error or {}).get("retry_after")
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        return None
    cap: float = settings.MAX_RETRY_AFTER
    return min(float(value), cap)


def record_interruption(
    run: WorkflowRun,
    workflow: type[Workflow],
    step: Step,
    step_run: StepRun,
    error: dict[str, Any] | None,
) -> str:
    """Run the step again after a dead worker's attempt (inside the run's lock).

    A worker killed mid-step (a deploy, an OOM kill, a lost database during
    the finish) says nothing about the step, so it neither spends the step's
    retry budget nor waits for a backoff. Only a step whose attempts keep
    being interrupted (`SQUIDMESH['MAX_INTERRUPTIONS']`) is failed, as if its
    retries were exhausted, so that a step that kills its worker cannot loop.
    """
    interrupted = _interruptions(step_run)
    if interrupted > settings.MAX_INTERRUPTIONS:
        error = {
            **(error or {}),
            "message": f"{interrupted} attempts interrupted (SQUIDMESH['MAX_INTERRUPTIONS'] "
            f"is {settings.MAX_INTERRUPTIONS}); last: {(error or {}).get('message', '')}",
            "retryable": False,
        }
        return record_failure(run, workflow, step, step_run, error, retryable=False)
    schedule_retry(run, step, step_run, error, 0.0)
    return f"interrupted; retry {(step_run.attempt_count or 1) + 1} now"


def schedule_retry(
    run: WorkflowRun, step: Step, step_run: StepRun, error: dict[str, Any] | None, delay: float
) -> None:
    """Queue the step's next attempt `delay` seconds from now (inside the run's lock)."""
    attempt = step_run.attempt_count or 1
    due = due_after(delay)
    StepRun.objects.filter(pk=step_run.pk).update(status=StepStatus.RETRYING, last_error=error)
    transition_run(run, RunStatus.RETRYING, last_error=error, scheduled_for=due)
    dispatch_step(run, step, attempt + 1, due)
    signals.send_after_commit(
        signals.step_retry_scheduled,
        run.workflow,
        **run_metadata(run),
        step=step.name,
        attempt=attempt,
        error=error,
        delay=delay,
    )


def _interruptions(step_run: StepRun) -> int:
    return StepAttempt.objects.filter(step_run=step_run, status=AttemptStatus.INTERRUPTED).count()
