"""Execute one step attempt: claim it, run the step body, record the outcome, advance.

A delivery is `(run_id, step, attempt)`. The executor works in three phases:

1. *claim*, in one transaction under the run's row lock: refuse stale and
   duplicate deliveries, close an attempt a dead worker left `running`,
   record the new attempt as `running`;
2. run the step body outside any transaction (it may take long and call
   other systems);
3. *finish*, in one transaction under the run's row lock: close the attempt
   (compare-and-set on `running`), merge the output into the context and
   dispatch what comes next in the same transaction.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from squidmesh import signals
from squidmesh.conf import settings
from squidmesh.exceptions import DeliveryDeferred, StepFailure, UnknownWorkflow
from squidmesh.lifecycle import (
    TERMINAL_STATUSES,
    AttemptStatus,
    RunStatus,
    StepStatus,
)
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.registry import registry
from squidmesh.runtime import delivery, heartbeat, retry
from squidmesh.runtime.context import StepContext
from squidmesh.runtime.delivery import (
    Delivery,
    current_delivery,
    rearm_timeout,
    worker_timer_available,
)
from squidmesh.runtime.dispatcher import Dispatch, get_dispatcher
from squidmesh.workflow.fields import storage_problem
from squidmesh.workflow.steps import COMPLETE, Step

__all__ = [
    "advance_to",
    "dispatch_step",
    "execute_step",
    "finish_cancellation",
    "open_attempt",
    "presumed_dead",
    "record_failure",
    "record_interruption",
    "run_metadata",
    "schedule_retry",
    "transition_run",
]

logger = logging.getLogger("squidmesh.runtime")

WORKER = f"{socket.gethostname()}:{os.getpid()}"

#: Seconds between tries to record a finished body while the database is
#: unreachable (about 16 s in all; the step's timeout still applies).
FINISH_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)

delivery.connect()


def execute_step(run_id: str, step: str, attempt: int) -> str:
    """django-q2 task: run attempt `attempt` of `step` in run `run_id`.

    Return a short description of what happened (kept by django-q2 as the
    task result). Raise only for infrastructure faults, so that django-q2
    does not acknowledge the task and redelivers it after its lease.
    """
    held = current_delivery(run_id, step, attempt)
    return StepExecutor(run_id, step, int(attempt), delivery=held).execute()


@dataclass
class Claim:
    run: WorkflowRun
    workflow: Any
    step: Step
    step_run: StepRun
    attempt: StepAttempt


class RunChanged(Exception):
    """The run was written by someone else since this executor read it (rolls back)."""


@dataclass
class Skip:
    """A delivery that does not run the step body (the claim transaction still commits)."""

    reason: str


class StepExecutor:
    def __init__(self, run_id: str, step: str, attempt: int, delivery: Delivery | None = None):
        self.run_id = str(run_id)
        self.step_name = step
        self.attempt_number = attempt
        self.workflow_name = ""
        self.trigger = ""
        #: The queue row this worker holds for the delivery (None outside a
        #: django-q2 worker): needed to continue the run inline.
        self.delivery = delivery
        self.inline_steps = 0
        #: Set by `_finish` when it claimed the next step for this worker.
        self.continuation: Claim | None = None
        #: Set by `_run_body` when the database connection died under the body.
        self.lost_database = False

    def execute(self) -> str:
        try:
            claim = self._claim()
        except IntegrityError:
            # Unique (run, step) / (step run, number) caught a racing claim:
            # on PostgreSQL the claim's subqueries read the snapshot taken
            # before the row lock was granted, so they can miss the winner's
            # step run. The winner may still die mid-step, so do not
            # acknowledge: the redelivery is skipped or recovers the attempt.
            raise DeliveryDeferred(
                f"Attempt {self.attempt_number} of {self.step_name!r} in run {self.run_id} "
                "was claimed concurrently by another worker."
            ) from None
        if isinstance(claim, Skip):
            self._skipped(claim.reason)
            return f"skipped: {claim.reason}"
        if claim is None:
            return "closed an interrupted attempt"
        while True:
            started = time.monotonic()
            with heartbeat.beating(claim.attempt.pk):
                output, error, retryable = self._run_body(claim)
                result = self._finish_durably(
                    claim, output, error, retryable, time.monotonic() - started
                )
            if self.continuation is None:
                return result if not self.inline_steps else f"{result} ({self.inline_steps} inline)"
            # The finish committed this step and claimed the next one for
            # this worker; the next body gets the next step's own timeout.
            claim, self.inline_steps = self.continuation, self.inline_steps + 1
            rearm_timeout(claim.step.timeout or _default_timeout())

    # -- phase 1 -----------------------------------------------------------

    @transaction.atomic
    def _claim(self) -> Claim | Skip | None:
        try:
            # One read under the lock: the run, how many steps it reached and
            # its step run for this step, if any (the common case: none).
            run = WorkflowRun.objects.locked_for_step(self.run_id, self.step_name)
        except ValidationError:
            run = None
        if run is None:
            return Skip("run not found")
        self.workflow_name, self.trigger = run.workflow, run.trigger
        if run.status in TERMINAL_STATUSES:
            return Skip(f"run is {run.status}")
        if run.status == RunStatus.CANCELLING:
            self._close_dead_attempt(run)
            finish_cancellation(run)
            return Skip("run was cancelled")
        if run.current_step != self.step_name:
            return Skip(f"stale delivery: the run is at step {run.current_step!r}")
        # An unregistered workflow raises UnknownWorkflow: the task stays
        # queued (redelivered after the lease) until a worker knows it or an
        # operator cancels the run.
        workflow = registry.get(run.workflow)
        step = workflow.steps.get(self.step_name)
        if step is None:
            error = {"type": "UnknownStep", "message": f"step {self.step_name!r} no longer exists"}
            transition_run(run, RunStatus.FAILED, last_error=error, scheduled_for=None)
            return Skip(error["message"])

        step_run = StepRun.objects.get(pk=run.step_run_id) if run.step_run_id else None
        latest = step_run.attempts.order_by("-number").first() if step_run else None
        if step_run is not None and step_run.status in (StepStatus.COMPLETED, StepStatus.FAILED):
            return Skip(f"step already {step_run.status}")
        if latest is not None and latest.status == AttemptStatus.RUNNING:
            if not presumed_dead(latest, step):
                # Another worker holds this attempt. Do not acknowledge: if
                # that worker dies, this task comes back after the lease.
                raise DeliveryDeferred(
                    f"Attempt {latest.number} of {self.step_name!r} in run {run.pk} is "
                    "still running in another worker."
                )
            StepAttempt.objects.close(latest, AttemptStatus.INTERRUPTED, error=_interrupted(latest))
            self.attempt_number = latest.number
            record_interruption(run, workflow, step, step_run, latest.error)
            return None
        expected = latest.number + 1 if latest else 1
        if self.attempt_number != expected:
            return Skip(f"stale delivery: attempt {self.attempt_number}, expected {expected}")

        now = timezone.now()
        step_run, attempt = open_attempt(
            run, self.step_name, self.attempt_number, step_run, run.steps_reached + 1, now
        )
        if run.status != RunStatus.RUNNING:
            transition_run(
                run, RunStatus.RUNNING, scheduled_for=None, started_at=run.started_at or now
            )
        self._send(signals.step_started, run)
        return Claim(run, workflow, step, step_run, attempt)

    def _close_dead_attempt(self, run: WorkflowRun) -> None:
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
        StepAttempt.objects.close(running, AttemptStatus.INTERRUPTED, error=_interrupted(running))
        StepRun.objects.filter(pk=running.step_run_id).update(
            status=StepStatus.CANCELLED, last_error=running.error, finished_at=running.finished_at
        )

    # -- phase 2 -----------------------------------------------------------

    def _run_body(self, claim: Claim) -> tuple[dict | None, dict | None, bool]:
        from django_q.exceptions import TimeoutException

        run = claim.run
        ctx = StepContext(
            run_id=str(run.pk),
            workflow=run.workflow,
            trigger=run.trigger,
            step=self.step_name,
            attempt=self.attempt_number,
            payload=dict(run.payload),
            context=dict(run.context),
        )
        self.ctx = ctx
        self.lost_database = False
        with ctx:
            try:
                output = claim.step.execute({**run.payload, **run.context}, ctx)
            except StepFailure as failure:
                return None, failure.as_error(), failure.retryable
            except TimeoutException as timeout:
                # django-q2's alarm for the task timeout; the worker goes on.
                return None, {"type": "Timeout", "message": str(timeout)}, True
            except Exception as error:
                if _database_lost(error):
                    # The database went away under the body (a restart, a
                    # failover): like a killed worker, that says nothing
                    # about the step, so it is an interruption (`_finish`).
                    self.lost_database = True
                    connection.close()  # `_finish` records it on a new connection
                    message = f"database connection lost during the attempt: {_first_line(error)}"
                    return (
                        None,
                        {"type": "Interrupted", "message": message, "retryable": True},
                        True,
                    )
                ctx.logger.warning("step %s raised %r", self.step_name, error)
                return (
                    None,
                    {
                        "type": type(error).__name__,
                        "message": str(error),
                        "traceback": traceback.format_exc(limit=20),
                    },
                    True,
                )
        return _check_output(output)

    # -- phase 3 -----------------------------------------------------------

    def _finish_durably(self, claim: Claim, *outcome: Any) -> str:
        """Record the body's outcome, retrying while the database connection is lost.

        The body already ran: giving up here leaves its attempt `running`, to
        be closed as interrupted and the body run again after the lease. A
        database restart or failover usually takes seconds, so reconnect and
        try again with backoff first. A retry after a commit whose
        acknowledgement was lost finds the attempt closed with this outcome
        and stops there.
        """
        step_name, attempt_number = self.step_name, self.attempt_number
        for delay in (*FINISH_RETRY_DELAYS, None):
            self.continuation = None
            self.step_name, self.attempt_number = step_name, attempt_number
            try:
                return self._finish(claim, *outcome)
            except (OperationalError, InterfaceError) as lost:
                if delay is None or connection.in_atomic_block:
                    raise  # not acknowledged: redelivered after the lease
                logger.warning(
                    "Recording attempt %s of %r in run %s failed (%s); retrying in %.1f s.",
                    attempt_number,
                    step_name,
                    self.run_id,
                    _first_line(lost),
                    delay,
                )
                connection.close()  # the next query opens a new connection
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _finish(
        self,
        claim: Claim,
        output: dict | None,
        error: dict | None,
        retryable: bool,
        duration: float,
    ) -> str:
        if error is None:
            finished = self._finish_unchanged_run(claim, output, duration)
            if finished is not None:
                return finished
        with transaction.atomic():
            run = WorkflowRun.objects.locked(self.run_id)
            attempt = claim.attempt
            status = AttemptStatus.FAILED if error else AttemptStatus.SUCCEEDED
            if error and self.lost_database:
                status = AttemptStatus.INTERRUPTED
            if run is None or not StepAttempt.objects.close(attempt, status, error=error):
                recorded = StepAttempt.objects.filter(pk=attempt.pk).values_list(
                    "status", flat=True
                )
                if (
                    run is not None
                    and status != AttemptStatus.INTERRUPTED
                    and recorded.first() == status
                ):
                    # This finish committed before its connection was lost
                    # (see `_finish_durably`); everything is recorded.
                    return f"{status}; recorded before the connection was lost"
                # The attempt was closed as interrupted meanwhile (this
                # worker outlived its lease); its retry owns the step now.
                self._skipped("attempt was closed by another delivery")
                return "discarded: attempt closed by another delivery"
            step_run, workflow, step = claim.step_run, claim.workflow, claim.step
            note = getattr(self, "ctx", None) and self.ctx.note
            if error is None:
                context = {**run.context, **output}
                StepRun.objects.filter(pk=step_run.pk).update(
                    status=StepStatus.COMPLETED,
                    output=output,
                    note=note,
                    finished_at=attempt.finished_at,
                )
                self._send(signals.step_completed, run, duration=duration)
                if run.status == RunStatus.CANCELLING:
                    finish_cancellation(run, context=context)
                    return "completed; run cancelled"
                if run.status in TERMINAL_STATUSES:
                    # Recorded, not advanced; the context still reflects
                    # every succeeded step.
                    WorkflowRun.objects.filter(pk=run.pk, status=run.status).update(context=context)
                    return f"completed; run already {run.status}"
                advance_to(run, workflow, workflow.next_step(step.name, "ok"), context=context)
                return "completed"
            if status == AttemptStatus.INTERRUPTED and run.status in (
                RunStatus.RUNNING,
                RunStatus.RETRYING,
            ):
                return record_interruption(run, workflow, step, step_run, error)
            self._send(signals.step_failed, run, duration=duration, error=error)
            if run.status == RunStatus.CANCELLING:
                ended = StepStatus.CANCELLED if self.lost_database else StepStatus.FAILED
                StepRun.objects.filter(pk=step_run.pk).update(
                    status=ended, last_error=error, finished_at=attempt.finished_at
                )
                finish_cancellation(run, last_error=error)
                return "failed; run cancelled"
            if run.status in TERMINAL_STATUSES:
                return f"failed; run already {run.status}"
            return record_failure(run, workflow, step, step_run, error, retryable=retryable)

    def _finish_unchanged_run(self, claim: Claim, output: dict, duration: float) -> str | None:
        """Record a succeeded step and advance the run, if nobody wrote the run since the claim.

        The common case, in one transaction without a separate locking read:
        the first statement is a compare-and-set of the run on the status,
        step and `updated_at` the claim saw (an optimistic lock; it takes the
        run's row lock first, in the same order as every other writer).
        Return None, with nothing written, when the run changed meanwhile (a
        cancel, an interrupted attempt): `_finish` then takes the locked path.
        """
        run, workflow, step, attempt = claim.run, claim.workflow, claim.step, claim.attempt
        if run.status != RunStatus.RUNNING:
            return None
        context = {**run.context, **output}
        target = workflow.next_step(step.name, "ok")
        next_step = None if target in (None, COMPLETE) else workflow.steps[target]
        delay = next_step.delay_before({**run.payload, **context}) if next_step else 0
        due = timezone.now() + timedelta(seconds=delay) if delay else None
        changes: dict[str, Any] = {"current_step": target if next_step else None}
        if next_step is None:
            changes["status"] = RunStatus.COMPLETED
        completed = self._metadata(run)
        note = getattr(self, "ctx", None) and self.ctx.note
        try:
            with transaction.atomic():
                if not WorkflowRun.objects.update_if_unchanged(
                    run, context=context, scheduled_for=due, **changes
                ):
                    return None
                if not StepAttempt.objects.close(attempt, AttemptStatus.SUCCEEDED):
                    raise RunChanged  # roll the run back; the locked path discards
                StepRun.objects.filter(pk=claim.step_run.pk).update(
                    status=StepStatus.COMPLETED,
                    output=output,
                    note=note,
                    finished_at=attempt.finished_at,
                )
                signals.send_after_commit(
                    signals.step_completed, self.workflow_name, **completed, duration=duration
                )
                if next_step is None:
                    signals.send_after_commit(
                        signals.run_transition,
                        run.workflow,
                        **run_metadata(run),
                        from_status=RunStatus.RUNNING,
                        to_status=RunStatus.COMPLETED,
                    )
                    return "completed"
                if due is None:
                    self.continuation = self._claim_inline(claim, run, next_step)
                if self.continuation is None:
                    dispatch_step(run, next_step, 1, due)
                return "completed"
        except RunChanged:
            return None

    def _claim_inline(self, claim: Claim, run: WorkflowRun, step: Step) -> Claim | None:
        """Claim `step`, the run's new current step, for this worker if it may run inline.

        Called inside the finish transaction: the step that finished and the
        claim of the next one commit together, before the next body starts.
        Instead of a new queue row, the row this worker holds is rewritten to
        carry the next step with a fresh lease, so a worker that dies during
        it is redelivered like any other. Return None to dispatch normally.
        """
        if (
            self.delivery is None
            or self.inline_steps >= settings.INLINE_STEPS
            or not worker_timer_available()
        ):
            return None
        work = Dispatch(
            run_id=str(run.pk),
            workflow=run.workflow,
            step=step.name,
            attempt=1,
            timeout=step.timeout,
        )
        task_id = get_dispatcher().hand_over(work, self.delivery.row_id)
        if task_id is None:
            return None
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
        self.step_name, self.attempt_number = step.name, 1
        step_run, attempt = open_attempt(
            run, step.name, 1, None, claim.step_run.position + 1, timezone.now()
        )
        self._send(signals.step_started, run)
        return Claim(run, claim.workflow, step, step_run, attempt)

    # -- signals -------------------------------------------------------------

    def _metadata(self, run: WorkflowRun | None = None) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow_name,
            "trigger": self.trigger,
            "status": run.status if run else None,
            "current_step": run.current_step if run else None,
            "step": self.step_name,
            "attempt": self.attempt_number,
        }

    def _send(self, signal, run: WorkflowRun, **extra: Any) -> None:
        signals.send_after_commit(signal, self.workflow_name, **self._metadata(run), **extra)

    def _skipped(self, reason: str) -> None:
        logger.info(
            "skipped delivery of %s#%s for run %s: %s",
            self.step_name,
            self.attempt_number,
            self.run_id,
            reason,
            extra={"run_id": self.run_id, "step": self.step_name, "attempt": self.attempt_number},
        )
        signals.step_skipped.send_robust(
            sender=self.workflow_name, **self._metadata(), reason=reason
        )


def presumed_dead(attempt: StepAttempt, step: Step | None) -> bool:
    """Return whether the worker that ran a `running` attempt must be dead by now."""
    from django_q.conf import Conf

    now = timezone.now()
    # Without a lease (Redis) a live worker beats every HEARTBEAT_INTERVAL
    # seconds while the body runs; a silent one was killed.
    if attempt.heartbeat_at is not None and heartbeat.enabled():
        silence = timedelta(seconds=settings.HEARTBEAT_TIMEOUT)
        if now > attempt.heartbeat_at + silence:
            return True
    # django-q2 ends a task at its timeout, so an attempt older than the
    # timeout (plus grace for the finishing transaction) has no live worker.
    limit = (step and step.timeout) or _default_timeout() or Conf.RETRY
    deadline = attempt.started_at + timedelta(seconds=limit + settings.INTERRUPTED_GRACE)
    return now > deadline


def _database_lost(error: Exception) -> bool:
    """Return whether `error` is squidmesh's database connection dropping (not a query error)."""
    if not isinstance(error, OperationalError | InterfaceError) or connection.in_atomic_block:
        return False  # inside a caller's transaction (sync mode) nothing can be recovered
    # A statement timeout or a lock error leaves the connection usable: the
    # step's own failure. A restart or failover leaves it dead.
    return connection.connection is None or not connection.is_usable()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _interrupted(attempt: StepAttempt) -> dict[str, Any]:
    return {
        "type": "Interrupted",
        "message": f"worker {attempt.worker} stopped during the attempt",
        "retryable": True,
    }


def _default_timeout() -> float | None:
    from django_q.conf import Conf

    return Conf.TIMEOUT


def _check_output(output: Any) -> tuple[dict | None, dict | None, bool]:
    """Return (output, error, retryable): a step must return a JSON-ready mapping or None."""
    if output is None:
        return {}, None, False
    if not isinstance(output, Mapping):
        message = f"step returned {type(output).__name__}, expected a mapping or None"
        return None, {"type": "InvalidStepOutput", "message": message}, False
    try:
        encoded = json.dumps(output, cls=DjangoJSONEncoder)
    except (TypeError, ValueError) as error:
        message = f"step output is not JSON-serializable: {error}"
        return None, {"type": "InvalidStepOutput", "message": message}, False
    if len(encoded) > settings.MAX_STEP_OUTPUT_BYTES:
        message = f"step output is {len(encoded)} bytes, over SQUIDMESH['MAX_STEP_OUTPUT_BYTES']"
        return None, {"type": "InvalidStepOutput", "message": message}, False
    decoded = json.loads(encoded)
    # What jsonb refuses would fail the finish transaction on every redelivery.
    problem = storage_problem(decoded)
    if problem:
        return None, {"type": "InvalidStepOutput", "message": f"step output {problem}"}, False
    return decoded, None, False


def open_attempt(
    run: WorkflowRun,
    step: str,
    number: int,
    step_run: StepRun | None,
    position: int,
    now,
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


def record_failure(
    run: WorkflowRun,
    workflow: Any,
    step: Step,
    step_run: StepRun,
    error: dict | None,
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


def _retry_after(error: dict | None) -> float | None:
    """Return the wait the failure asked for (`StepFailure.retry_after`), capped."""
    value = (error or {}).get("retry_after")
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        return None
    return min(float(value), settings.MAX_RETRY_AFTER)


def record_interruption(
    run: WorkflowRun, workflow: Any, step: Step, step_run: StepRun, error: dict | None
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
    run: WorkflowRun, step: Step, step_run: StepRun, error: dict | None, delay: float
) -> None:
    """Queue the step's next attempt `delay` seconds from now (inside the run's lock)."""
    attempt = step_run.attempt_count or 1
    due = timezone.now() + timedelta(seconds=delay) if delay else None
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


def advance_to(run: WorkflowRun, workflow: Any, target: str | None, **changes: Any) -> None:
    """Move `run` to step `target` (or complete it) and dispatch that step in this transaction."""
    if target is None or target == COMPLETE:
        transition_run(run, RunStatus.COMPLETED, current_step=None, scheduled_for=None, **changes)
        return
    step = workflow.steps[target]
    delay = step.delay_before({**run.payload, **run.context, **changes.get("context", {})})
    due = timezone.now() + timedelta(seconds=delay) if delay else None
    WorkflowRun.objects.save_progress(run, current_step=target, scheduled_for=due, **changes)
    dispatch_step(run, step, 1, due)


def dispatch_step(run: WorkflowRun, step: Step | str, attempt: int, due) -> None:
    """Queue attempt `attempt` of `step` (a step, or the name of one no longer defined)."""
    name, timeout = (step, None) if isinstance(step, str) else (step.name, step.timeout)
    dispatcher = get_dispatcher()
    task_id = dispatcher.dispatch(
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


def finish_cancellation(run: WorkflowRun, **changes: Any) -> None:
    """Make a run `cancelled` (inside its lock); a step waiting to retry is cancelled too."""
    StepRun.objects.filter(run=run, status=StepStatus.RETRYING).update(
        status=StepStatus.CANCELLED, finished_at=timezone.now()
    )
    transition_run(run, RunStatus.CANCELLED, scheduled_for=None, **changes)


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


def run_metadata(run: WorkflowRun) -> dict[str, Any]:
    return {
        "run_id": str(run.pk),
        "workflow": run.workflow,
        "trigger": run.trigger,
        "status": run.status,
        "current_step": run.current_step,
    }
