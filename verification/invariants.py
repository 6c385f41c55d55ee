"""Invariants of durable execution, checked on the engine's tables and the harness's ledgers.

Each check takes a `Snapshot` (runs, step runs, attempts and queued tasks
read once) and returns `Violation`s naming the run. Used by the
verification harness after every scenario and by the test suite.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

__all__ = ["INVARIANTS", "Snapshot", "Violation", "check"]


@dataclass(frozen=True)
class Violation:
    invariant: str
    run_id: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] run {self.run_id}: {self.detail}"


@dataclass(frozen=True)
class QueuedTask:
    run_id: str
    step: str
    attempt: int
    not_before: datetime


@dataclass
class Snapshot:
    """The state the invariants look at, read in a handful of queries."""

    runs: dict[str, Any]
    step_runs: dict[str, list[Any]]
    attempts: dict[Any, list[Any]]
    queued: dict[str, list[QueuedTask]]
    #: Step bodies observed running: objects with run_id, step, attempt.
    ledger: list[Any] = field(default_factory=list)
    #: Dispatches recorded in the dispatching transaction: run_id, step, attempt,
    #: at, and optionally run_status (the run's status in that transaction).
    dispatches: list[Any] = field(default_factory=list)
    #: Run id -> the terminal statuses it may end in.
    expected: Mapping[str, Collection[str]] = field(default_factory=dict)
    taken_at: datetime = field(default_factory=timezone.now)

    @classmethod
    def take(
        cls,
        run_ids: Iterable[Any] | None = None,
        *,
        ledger: Iterable[Any] = (),
        dispatches: Iterable[Any] = (),
        expected: Mapping[str, Collection[str]] | None = None,
    ) -> Snapshot:
        """Read the runs (all, or those in `run_ids`) with their steps, attempts and queued work."""
        from squidmesh.models import StepAttempt, StepRun, WorkflowRun

        runs_qs = WorkflowRun.objects.all()
        if run_ids is not None:
            runs_qs = runs_qs.filter(pk__in=list(run_ids))
        runs = {str(run.pk): run for run in runs_qs}
        step_runs: dict[str, list[Any]] = defaultdict(list)
        for step_run in StepRun.objects.filter(run_id__in=runs.keys()).order_by("position"):
            step_runs[str(step_run.run_id)].append(step_run)
        attempts: dict[Any, list[Any]] = defaultdict(list)
        for attempt in StepAttempt.objects.filter(run_id__in=runs.keys()).order_by("number"):
            attempts[attempt.step_run_id].append(attempt)
        queued: dict[str, list[QueuedTask]] = defaultdict(list)
        for task in queued_step_tasks():
            if task.run_id in runs:
                queued[task.run_id].append(task)
        return cls(
            runs=runs,
            step_runs=step_runs,
            attempts=attempts,
            queued=queued,
            ledger=[row for row in ledger if str(row.run_id) in runs],
            dispatches=[row for row in dispatches if str(row.run_id) in runs],
            expected=expected or {},
        )

    def attempts_of(self, run_id: str) -> Iterable[tuple[Any, Any]]:
        for step_run in self.step_runs.get(run_id, []):
            for attempt in self.attempts.get(step_run.pk, []):
                yield step_run, attempt


def queued_step_tasks() -> list[QueuedTask]:
    """Return the squidmesh step tasks waiting to be delivered, on either broker.

    That is the broker's queue (django-q2's ORM rows, or the Redis list)
    plus squidmesh's outbox (dispatches the relay has not handed to a
    broker that cannot join transactions yet).
    """
    from django_q.signing import BadSignature, SignedPackage

    from squidmesh.models import OutboxMessage
    from squidmesh.runtime.dispatcher import EXECUTE_STEP
    from verification.broker import queued_packages

    tasks = []
    for payload, not_before in queued_packages():
        try:
            task = SignedPackage.loads(payload)
        except (BadSignature, TypeError, ValueError):
            continue
        if task.get("func") == EXECUTE_STEP:
            run_id, step, attempt = task["args"][:3]
            tasks.append(QueuedTask(str(run_id), step, int(attempt), not_before))
    outbox = OutboxMessage.objects.values_list("run_id", "step", "attempt", "due_at")
    for run_id, step, attempt, due_at in outbox:
        tasks.append(QueuedTask(str(run_id), step, int(attempt), due_at))
    return tasks


# -- the invariants ----------------------------------------------------------


def check_not_lost(snap: Snapshot) -> list[Violation]:
    """Every run is terminal, or active with queued work that will deliver it; no attempt dangles."""
    from squidmesh.lifecycle import ACTIVE_STATUSES, TERMINAL_STATUSES, AttemptStatus

    found = []
    for run_id, run in snap.runs.items():
        if run.status in TERMINAL_STATUSES:
            if run.finished_at is None:
                found.append(
                    Violation("lost or stuck", run_id, f"{run.status} without finished_at")
                )
            for step_run, attempt in snap.attempts_of(run_id):
                if attempt.status == AttemptStatus.RUNNING:
                    found.append(
                        Violation(
                            "lost or stuck",
                            run_id,
                            f"run is {run.status} but attempt {attempt.number} of "
                            f"{step_run.step!r} is still running",
                        )
                    )
        elif run.status in ACTIVE_STATUSES:
            pending = [t for t in snap.queued.get(run_id, []) if t.step == run.current_step]
            if not pending:
                found.append(
                    Violation(
                        "lost or stuck",
                        run_id,
                        f"{run.status} at step {run.current_step!r} with no queued work",
                    )
                )
        else:
            found.append(Violation("lost or stuck", run_id, f"unknown status {run.status!r}"))
    return found


def check_expected_outcome(snap: Snapshot) -> list[Violation]:
    """Every run the harness knows the outcome of ended in one of its expected statuses."""
    found = []
    for run_id, allowed in snap.expected.items():
        run = snap.runs.get(run_id)
        if run is None:
            found.append(Violation("expected outcome", run_id, "run does not exist"))
        elif run.status not in allowed:
            error = (run.last_error or {}).get("message", "")
            found.append(
                Violation(
                    "expected outcome",
                    run_id,
                    f"{run.workflow} ended {run.status}, expected {'/'.join(sorted(allowed))}"
                    + (f" (last error: {error})" if error else ""),
                )
            )
    return found


def check_attempts_contiguous(snap: Snapshot) -> list[Violation]:
    """Attempts of a step are numbered 1..n; only the last may be running or succeeded."""
    from squidmesh.lifecycle import AttemptStatus, StepStatus

    found = []
    for run_id, step_runs in snap.step_runs.items():
        for step_run in step_runs:
            attempts = snap.attempts.get(step_run.pk, [])
            numbers = [a.number for a in attempts]
            where = f"step {step_run.step!r}"
            if numbers != list(range(1, len(numbers) + 1)):
                found.append(Violation("attempts contiguous", run_id, f"{where}: {numbers}"))
                continue
            for attempt in attempts[:-1]:
                if attempt.status in (AttemptStatus.RUNNING, AttemptStatus.SUCCEEDED):
                    found.append(
                        Violation(
                            "attempts contiguous",
                            run_id,
                            f"{where}: attempt {attempt.number} is {attempt.status} "
                            f"but attempt {numbers[-1]} followed it",
                        )
                    )
            succeeded = bool(attempts) and attempts[-1].status == AttemptStatus.SUCCEEDED
            if succeeded != (step_run.status == StepStatus.COMPLETED):
                last = attempts[-1].status if attempts else "none"
                found.append(
                    Violation(
                        "attempts contiguous",
                        run_id,
                        f"{where} is {step_run.status} but its last attempt is {last}",
                    )
                )
    return found


def check_single_execution(snap: Snapshot) -> list[Violation]:
    """A step body runs at most once per attempt, and never again after an attempt succeeded."""
    from squidmesh.lifecycle import AttemptStatus

    found = []
    succeeded: dict[tuple[str, str], int] = {}
    for run_id in snap.runs:
        for step_run, attempt in snap.attempts_of(run_id):
            if attempt.status == AttemptStatus.SUCCEEDED:
                succeeded[(run_id, step_run.step)] = attempt.number
    bodies = Counter((str(row.run_id), row.step, int(row.attempt)) for row in snap.ledger)
    for (run_id, step, number), count in sorted(bodies.items()):
        if count > 1:
            found.append(
                Violation(
                    "double execution",
                    run_id,
                    f"body of {step!r} attempt {number} ran {count} times",
                )
            )
        done = succeeded.get((run_id, step))
        if done is not None and number > done:
            found.append(
                Violation(
                    "double execution",
                    run_id,
                    f"body of {step!r} ran as attempt {number} after attempt {done} succeeded",
                )
            )
    return found


def check_ledger_reconciled(snap: Snapshot) -> list[Violation]:
    """Every step body observed running is recorded as an attempt of that step."""
    recorded = {
        (run_id, step_run.step, attempt.number)
        for run_id in snap.runs
        for step_run, attempt in snap.attempts_of(run_id)
    }
    found = []
    for row in snap.ledger:
        key = (str(row.run_id), row.step, int(row.attempt))
        if key not in recorded:
            found.append(
                Violation(
                    "body without attempt",
                    key[0],
                    f"body of {row.step!r} attempt {row.attempt} ran with no attempt row",
                )
            )
    return found


def check_no_dispatch_after_terminal(snap: Snapshot) -> list[Violation]:
    """Nothing is dispatched, claimed or started for a run once it is cancelling or terminal.

    One dispatch is allowed while a run is `cancelling`: the recovery sweep
    re-sending the attempt that was running when the run was cancelled
    (its worker died, so only a delivery can close it and end the run),
    as long as no body of that attempt starts from it.
    """
    from squidmesh.lifecycle import TERMINAL_STATUSES, RunStatus

    found = []
    for run_id, run in snap.runs.items():
        end = run.finished_at
        if end is None:
            continue
        for step_run in snap.step_runs.get(run_id, []):
            if step_run.created_at > end:
                found.append(
                    Violation(
                        "work after terminal",
                        run_id,
                        f"step {step_run.step!r} reached at {step_run.created_at:%H:%M:%S.%f}, "
                        f"after the run ended at {end:%H:%M:%S.%f}",
                    )
                )
        for step_run, attempt in snap.attempts_of(run_id):
            if attempt.started_at > end:
                found.append(
                    Violation(
                        "work after terminal",
                        run_id,
                        f"attempt {attempt.number} of {step_run.step!r} started "
                        f"{(attempt.started_at - end).total_seconds():.3f}s after the run ended",
                    )
                )
    for row in snap.dispatches:
        run = snap.runs[str(row.run_id)]
        status = getattr(row, "run_status", None)
        if status == RunStatus.CANCELLING and resends_dead_attempt(snap, row):
            continue
        if status in TERMINAL_STATUSES or status == RunStatus.CANCELLING:
            found.append(
                Violation(
                    "work after terminal",
                    str(row.run_id),
                    f"{row.step!r} attempt {row.attempt} dispatched while the run was {status}",
                )
            )
        elif run.finished_at is not None and row.at > run.finished_at:
            found.append(
                Violation(
                    "work after terminal",
                    str(row.run_id),
                    f"{row.step!r} attempt {row.attempt} dispatched "
                    f"{(row.at - run.finished_at).total_seconds():.3f}s after the run "
                    f"became {run.status}",
                )
            )
    return found


def resends_dead_attempt(snap: Snapshot, dispatch: Any) -> bool:
    """Return whether `dispatch` re-sends an attempt that started before it and ran no body since.

    A run becomes `cancelling` only while an attempt is running, so the one
    legitimate dispatch then is that attempt again (the sweep's, after its
    worker died). A dispatch of a new attempt or of another step is work
    after the cancel; so is a body of the re-sent attempt starting after it.
    """
    run_id = str(dispatch.run_id)
    step_runs = snap.step_runs.get(run_id, [])
    # The step the run was cancelled in is the last one it reached.
    if not step_runs or step_runs[-1].step != dispatch.step:
        return False
    resent = next(
        (
            attempt
            for attempt in snap.attempts.get(step_runs[-1].pk, [])
            if attempt.number == int(dispatch.attempt)
        ),
        None,
    )
    if resent is None or resent.started_at > dispatch.at:
        return False
    return not any(
        str(body.run_id) == run_id
        and body.step == dispatch.step
        and int(body.attempt) == int(dispatch.attempt)
        and body_started_at(body) > dispatch.at
        for body in snap.ledger
    )


def body_started_at(body: Any) -> datetime:
    """Return when a ledger row's body started (`BodyRun.started_at`, or `created_at`)."""
    return getattr(body, "started_at", None) or body.created_at


def check_context_merge(snap: Snapshot) -> list[Violation]:
    """A run's context is the merge, in step order, of its completed steps' outputs."""
    from squidmesh.lifecycle import StepStatus

    found = []
    for run_id, run in snap.runs.items():
        merged: dict[str, Any] = {}
        for step_run in snap.step_runs.get(run_id, []):
            if step_run.status == StepStatus.COMPLETED:
                merged.update(step_run.output or {})
        if merged != (run.context or {}):
            found.append(
                Violation(
                    "context = merged outputs",
                    run_id,
                    f"context {run.context!r} != merged outputs {merged!r}",
                )
            )
    return found


#: Name shown in the summary -> check.
INVARIANTS: dict[str, Callable[[Snapshot], list[Violation]]] = {
    "no run lost or stuck": check_not_lost,
    "expected terminal status": check_expected_outcome,
    "attempt numbers contiguous": check_attempts_contiguous,
    "no double execution": check_single_execution,
    "every body run is an attempt": check_ledger_reconciled,
    "nothing after terminal": check_no_dispatch_after_terminal,
    "context = merged outputs": check_context_merge,
}


def check(snap: Snapshot) -> dict[str, list[Violation]]:
    """Run every invariant on `snap`; return violations by invariant name (empty lists if none)."""
    return {name: invariant(snap) for name, invariant in INVARIANTS.items()}
