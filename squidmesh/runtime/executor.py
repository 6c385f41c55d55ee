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

Every write goes through `squidmesh.state`; this module decides which.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from squidmesh import signals, state
from squidmesh.conf import settings
from squidmesh.exceptions import DeliveryDeferred
from squidmesh.identifiers import RunId, parse_run_id
from squidmesh.lifecycle import TERMINAL_STATUSES, AttemptStatus, RunStatus, StepStatus
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.registry import registry
from squidmesh.runtime import heartbeat
from squidmesh.runtime.context import StepContext
from squidmesh.runtime.delivery import (
    Delivery,
    current_delivery,
    rearm_timeout,
    worker_timer_available,
)
from squidmesh.runtime.outcome import StepOutcome, first_line, run_step_body
from squidmesh.state.claims import Awaiting, default_timeout
from squidmesh.workflow.steps import COMPLETE, Step

if TYPE_CHECKING:
    from squidmesh.workflow.base import Workflow

__all__ = ["Claim", "StepExecutor", "execute_step"]

logger = logging.getLogger("squidmesh.runtime")

#: Seconds between tries to record a finished body while the database is
#: unreachable (about 16 s in all; the step's timeout still applies).
FINISH_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


def execute_step(run_id: str, step: str, attempt: int) -> str:
    """django-q2 task: run attempt `attempt` of `step` in run `run_id`.

    Return a short description of what happened (kept by django-q2 as the
    task result). Raise only for infrastructure faults, so that django-q2
    does not acknowledge the task and redelivers it after its lease.
    """
    try:
        key = parse_run_id(run_id)
    except ValueError:
        logger.info("skipped delivery of %s#%s for run %r: run not found", step, attempt, run_id)
        return "skipped: run not found"
    held = current_delivery(run_id, step, attempt)
    return StepExecutor(key, step, int(attempt), delivery=held).execute()


@dataclass
class Claim:
    run: WorkflowRun
    workflow: type[Workflow]
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
    def __init__(
        self,
        run_id: RunId | str,
        step: str,
        attempt: int,
        delivery: Delivery | None = None,
    ) -> None:
        self.run_id: RunId = parse_run_id(run_id)
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
        #: The context of the body being run (set by `_run_body`), whose
        #: `note` the finish records.
        self.ctx: StepContext | None = None

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
                outcome = self._run_body(claim)
                result = self._finish_durably(claim, outcome, time.monotonic() - started)
            if self.continuation is None:
                return result if not self.inline_steps else f"{result} ({self.inline_steps} inline)"
            # The finish committed this step and claimed the next one for
            # this worker; the next body gets the next step's own timeout.
            claim, self.inline_steps = self.continuation, self.inline_steps + 1
            rearm_timeout(claim.step.timeout or default_timeout())

    # -- phase 1 -----------------------------------------------------------

    @transaction.atomic
    def _claim(self) -> Claim | Skip | None:
        # One read under the lock: the run, how many steps it reached and
        # its step run for this step, if any (the common case: none).
        run = WorkflowRun.objects.locked_for_step(self.run_id, self.step_name)
        if run is None:
            return Skip("run not found")
        self.workflow_name, self.trigger = run.workflow, run.trigger
        if run.status in TERMINAL_STATUSES:
            return Skip(f"run is {run.status}")
        if run.status == RunStatus.CANCELLING:
            state.cancel_dead_attempt(run)
            state.finish_cancellation(run)
            return Skip("run was cancelled")
        if run.current_step != self.step_name:
            return Skip(f"stale delivery: the run is at step {run.current_step!r}")
        # An unregistered workflow raises UnknownWorkflow: the task stays
        # queued (redelivered after the lease) until a worker knows it or an
        # operator cancels the run.
        workflow = registry.get(run.workflow)
        step = workflow.steps.get(self.step_name)
        if step is None:
            return Skip(state.fail_removed_step(run, self.step_name))

        step_run = StepRun.objects.get(pk=run.step_run_id) if run.step_run_id else None
        awaited = state.awaited_attempt(step_run, step)
        if awaited.awaiting is Awaiting.NOTHING:
            assert step_run is not None
            return Skip(f"step already {step_run.status}")
        if awaited.awaiting is Awaiting.LIVE_ATTEMPT:
            # Another worker holds this attempt. Do not acknowledge: if
            # that worker dies, this task comes back after the lease.
            raise DeliveryDeferred(
                f"Attempt {awaited.number} of {self.step_name!r} in run {run.pk} is "
                "still running in another worker."
            )
        if awaited.awaiting is Awaiting.DEAD_ATTEMPT:
            latest, dead_run = awaited.latest, step_run
            assert latest is not None and dead_run is not None
            state.interrupt_attempt(latest)
            self.attempt_number = latest.number
            state.record_interruption(run, workflow, step, dead_run, latest.error)
            return None
        if self.attempt_number != awaited.number:
            return Skip(f"stale delivery: attempt {self.attempt_number}, expected {awaited.number}")

        now = timezone.now()
        step_run, attempt = state.open_attempt(
            run, self.step_name, self.attempt_number, step_run, run.steps_reached + 1, now
        )
        if run.status != RunStatus.RUNNING:
            state.transition_run(
                run, RunStatus.RUNNING, scheduled_for=None, started_at=run.started_at or now
            )
        self._send(signals.step_started, run)
        return Claim(run, workflow, step, step_run, attempt)

    # -- phase 2 -----------------------------------------------------------

    def _run_body(self, claim: Claim) -> StepOutcome:
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
        return run_step_body(claim.step, {**run.payload, **run.context}, ctx)

    @property
    def note(self) -> dict[str, Any] | None:
        """The note the body left on its context (`ctx.note`), recorded with the step."""
        return self.ctx.note if self.ctx is not None else None

    # -- phase 3 -----------------------------------------------------------

    def _finish_durably(self, claim: Claim, outcome: StepOutcome, duration: float) -> str:
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
                return self._finish(claim, outcome, duration)
            except (OperationalError, InterfaceError) as lost:
                if delay is None or connection.in_atomic_block:
                    raise  # not acknowledged: redelivered after the lease
                logger.warning(
                    "Recording attempt %s of %r in run %s failed (%s); retrying in %.1f s.",
                    attempt_number,
                    step_name,
                    self.run_id,
                    first_line(lost),
                    delay,
                )
                connection.close()  # the next query opens a new connection
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _finish(self, claim: Claim, outcome: StepOutcome, duration: float) -> str:
        if outcome.succeeded:
            finished = self._finish_unchanged_run(claim, outcome, duration)
            if finished is not None:
                return finished
        with transaction.atomic():
            run = WorkflowRun.objects.locked(self.run_id)
            attempt, error = claim.attempt, outcome.error
            status = AttemptStatus.SUCCEEDED if outcome.succeeded else AttemptStatus.FAILED
            if outcome.interrupted:
                status = AttemptStatus.INTERRUPTED
            if run is None or not state.close_attempt(attempt, status, error=error):
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
            if outcome.output is not None:
                return self._finish_locked_success(claim, run, outcome.output, duration)
            if status == AttemptStatus.INTERRUPTED and run.status in (
                RunStatus.RUNNING,
                RunStatus.RETRYING,
            ):
                return state.record_interruption(run, workflow, step, step_run, error)
            self._send(signals.step_failed, run, duration=duration, error=error)
            if run.status == RunStatus.CANCELLING:
                ended = StepStatus.CANCELLED if outcome.interrupted else StepStatus.FAILED
                state.end_step_run(step_run, ended, error, attempt.finished_at)
                state.finish_cancellation(run, last_error=error)
                return "failed; run cancelled"
            if run.status in TERMINAL_STATUSES:
                return f"failed; run already {run.status}"
            return state.record_failure(
                run, workflow, step, step_run, error, retryable=outcome.retryable
            )

    def _finish_locked_success(
        self, claim: Claim, run: WorkflowRun, output: dict[str, Any], duration: float
    ) -> str:
        """Record a succeeded step on a run someone wrote since the claim (under its lock)."""
        context = {**run.context, **output}
        self._record_success(claim, output, self._metadata(run), duration)
        if run.status == RunStatus.CANCELLING:
            state.finish_cancellation(run, context=context)
            return "completed; run cancelled"
        if run.status in TERMINAL_STATUSES:
            # Recorded, not advanced; the context still reflects every
            # succeeded step.
            state.save_context(run, context)
            return f"completed; run already {run.status}"
        state.advance_to(
            run, claim.workflow, claim.workflow.next_step(claim.step.name, "ok"), context=context
        )
        return "completed"

    def _record_success(
        self, claim: Claim, output: dict[str, Any], metadata: dict[str, Any], duration: float
    ) -> None:
        """Mark the step run completed and signal it with `metadata` (the run as it was read)."""
        state.record_success(claim.step_run, output, self.note, claim.attempt.finished_at)
        signals.send_after_commit(
            signals.step_completed, self.workflow_name, **metadata, duration=duration
        )

    def _finish_unchanged_run(
        self, claim: Claim, outcome: StepOutcome, duration: float
    ) -> str | None:
        """Record a succeeded step and advance the run, if nobody wrote the run since the claim.

        The common case, in one transaction without a separate locking read:
        the first statement is a compare-and-set of the run on the status,
        step and `updated_at` the claim saw (an optimistic lock; it takes the
        run's row lock first, in the same order as every other writer).
        Return None, with nothing written, when the run changed meanwhile (a
        cancel, an interrupted attempt): `_finish` then takes the locked path.
        """
        run, workflow, step, attempt = claim.run, claim.workflow, claim.step, claim.attempt
        output = outcome.output
        if run.status != RunStatus.RUNNING or output is None:
            return None
        context = {**run.context, **output}
        target = workflow.next_step(step.name, "ok")
        next_step = None if target in (None, COMPLETE) else workflow.steps[target]
        due = state.due_after(
            next_step.delay_before({**run.payload, **context}) if next_step else None
        )
        changes: dict[str, Any] = {"current_step": target if next_step else None}
        if next_step is None:
            changes["status"] = RunStatus.COMPLETED
        completed = self._metadata(run)
        try:
            with transaction.atomic():
                if not WorkflowRun.objects.update_if_unchanged(
                    run, context=context, scheduled_for=due, **changes
                ):
                    return None
                if not state.close_attempt(attempt, AttemptStatus.SUCCEEDED):
                    raise RunChanged  # roll the run back; the locked path discards
                self._record_success(claim, output, completed, duration)
                if next_step is None:
                    signals.send_after_commit(
                        signals.run_transition,
                        run.workflow,
                        **state.run_metadata(run),
                        from_status=RunStatus.RUNNING,
                        to_status=RunStatus.COMPLETED,
                    )
                    return "completed"
                if due is None:
                    self.continuation = self._claim_inline(claim, run, next_step)
                if self.continuation is None:
                    state.dispatch_step(run, next_step, 1, due)
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
        if not state.hand_over_step(run, step, self.delivery.row_id):
            return None
        self.step_name, self.attempt_number = step.name, 1
        step_run, attempt = state.open_attempt(
            run, step.name, 1, None, claim.step_run.position + 1, timezone.now()
        )
        self._send(signals.step_started, run)
        return Claim(run, claim.workflow, step, step_run, attempt)

    # -- signals -------------------------------------------------------------

    def _metadata(self, run: WorkflowRun | None = None) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "workflow": self.workflow_name,
            "trigger": self.trigger,
            "status": run.status if run else None,
            "current_step": run.current_step if run else None,
            "step": self.step_name,
            "attempt": self.attempt_number,
        }

    def _send(self, signal: Signal, run: WorkflowRun, **extra: Any) -> None:
        signals.send_after_commit(signal, self.workflow_name, **self._metadata(run), **extra)

    def _skipped(self, reason: str) -> None:
        logger.info(
            "skipped delivery of %s#%s for run %s: %s",
            self.step_name,
            self.attempt_number,
            self.run_id,
            reason,
            extra={
                "run_id": str(self.run_id),
                "step": self.step_name,
                "attempt": self.attempt_number,
            },
        )
        signals.step_skipped.send_robust(
            sender=self.workflow_name, **self._metadata(), reason=reason
        )
