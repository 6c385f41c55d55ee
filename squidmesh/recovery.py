"""Recover runs whose next delivery was lost: find them and queue that delivery again.

On django-q2's ORM broker (using squidmesh's database) a delivery cannot be
lost: it is written in the same transaction as the state change and leased
until a worker acknowledges it. Other brokers give weaker promises. Redis
loses a task pulled by a worker that then dies, and a crash between commit
and enqueue leaves an active run with nothing queued. The sweep finds
active runs that made no progress for `SQUIDMESH["RECOVER_AFTER"]` seconds
and whose delivery is overdue, and dispatches the delivery they wait for.

The sweep never changes a run's status or steps itself: it only queues the
delivery a worker would have received, so every guarantee of the executor
holds (a duplicate is skipped, an attempt a dead worker left `running` is
closed as interrupted, a live one is left alone). It runs on django-q2's
scheduler every `SQUIDMESH["RECOVERY_INTERVAL"]` minutes and from
`manage.py squidmesh recover`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from squidmesh.conf import settings
from squidmesh.exceptions import UnknownWorkflow
from squidmesh.lifecycle import TERMINAL_STATUSES, RunStatus
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.registry import registry
from squidmesh.state import Awaiting, awaited_attempt, record_redispatch

__all__ = [
    "Recovery",
    "Sweep",
    "recover_runs",
    "recover_silent_attempts",
    "sync_recovery_schedule",
]

logger = logging.getLogger("squidmesh.recovery")

#: The django-q2 schedule that runs the sweep (owned by name *and* func).
SCHEDULE_NAME = "squidmesh:recover"
SWEEP = "squidmesh.recovery.scheduled_sweep"


@dataclass(frozen=True)
class Recovery:
    """What the sweep did with one stale run."""

    run_id: str
    workflow: str
    status: str
    step: str | None
    attempt: int | None
    redispatched: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sweep:
    """The outcome of one sweep."""

    older_than: float
    dry_run: bool = False
    #: Set when the sweep stood down because the queue is behind (nothing checked).
    backlog: bool = False
    runs: list[Recovery] = field(default_factory=list)

    @property
    def redispatched(self) -> list[Recovery]:
        return [r for r in self.runs if r.redispatched]

    def summary(self) -> str:
        if self.backlog:
            return (
                f"queue backlog: work has been waiting for a worker for over {self.older_than:g} s, "
                "so stale runs are queued, not lost; nothing redispatched"
            )
        verb = "would redispatch" if self.dry_run else "redispatched"
        return f"{len(self.runs)} stale run(s), {verb} {len(self.redispatched)}"


def recover_runs(
    *, older_than: float | None = None, limit: int | None = None, dry_run: bool = False
) -> Sweep:
    """Queue again the delivery of every active run that waits for one that was lost.

    A run is a candidate when it is active, was not updated for
    `older_than` seconds (default `SQUIDMESH["RECOVER_AFTER"]`) and has
    no delivery due later than that. Each candidate is re-checked under
    its row lock; it is redispatched unless its current attempt is still
    running (younger than its timeout plus grace) or its workflow is no
    longer registered. A redispatch moves the run's `updated_at`, so a
    run waiting behind a slow queue is redispatched at most once per
    `older_than`. With `dry_run`, nothing is written or queued.
    """
    older_than = float(settings.RECOVER_AFTER if older_than is None else older_than)
    limit = settings.RECOVERY_BATCH if limit is None else limit
    cutoff = timezone.now() - timedelta(seconds=older_than)
    sweep = Sweep(older_than=older_than, dry_run=dry_run)
    if _queue_backlog(cutoff):
        sweep.backlog = True
        return sweep
    stale = (
        WorkflowRun.objects.stale(timedelta(seconds=older_than))
        .filter(Q(scheduled_for__isnull=True) | Q(scheduled_for__lt=cutoff))
        .order_by("updated_at")
        .values_list("pk", flat=True)
    )
    for run_id in list(stale[:limit]):
        with transaction.atomic():
            outcome = _recover(WorkflowRun.objects.locked(run_id), cutoff, dry_run)
        if outcome is not None:
            sweep.runs.append(outcome)
    return sweep


def recover_silent_attempts(*, limit: int | None = None) -> list[Recovery]:
    """Re-send the delivery of running attempts whose worker stopped beating.

    Brokers without a lease (Redis) drop the task of a worker that dies, so
    nothing would close its attempt before the recovery sweep. An attempt
    silent for `SQUIDMESH["HEARTBEAT_TIMEOUT"]` seconds is presumed dead:
    re-sending its delivery closes it as interrupted and retries the step,
    exactly as a redelivery after a lease would. The outbox relay calls this
    every `HEARTBEAT_INTERVAL` seconds; it does nothing while heartbeats are off.
    """
    from squidmesh.runtime import heartbeat

    if not heartbeat.enabled():
        return []
    limit = settings.RECOVERY_BATCH if limit is None else limit
    cutoff = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT)
    run_ids = (
        StepAttempt.objects.silent_since(cutoff)
        .order_by("heartbeat_at")
        .values_list("run_id", flat=True)[:limit]
    )
    outcomes = []
    for run_id in dict.fromkeys(run_ids):
        with transaction.atomic():
            outcome = _recover(WorkflowRun.objects.locked(run_id), cutoff, dry_run=False)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _recover(run: WorkflowRun | None, cutoff: datetime, dry_run: bool) -> Recovery | None:
    """Redispatch `run`'s awaited delivery (inside its row lock) unless it moved on."""
    if run is None or run.status in TERMINAL_STATUSES or run.current_step is None:
        return None
    if run.updated_at >= cutoff or (run.scheduled_for and run.scheduled_for >= cutoff):
        return None  # progressed since the candidates were read

    def outcome(attempt: int | None, redispatched: bool, reason: str) -> Recovery:
        return Recovery(
            str(run.pk), run.workflow, run.status, run.current_step, attempt, redispatched, reason
        )

    try:
        step = registry.get(run.workflow).steps.get(run.current_step)
    except UnknownWorkflow:
        if run.status != RunStatus.CANCELLING:
            # A delivery could not run it either; an operator cancels it.
            return outcome(None, False, "workflow is not registered")
        step = None
    step_run = StepRun.objects.filter(run=run, step=run.current_step).first()
    awaited = awaited_attempt(step_run, step)
    if awaited.awaiting is Awaiting.LIVE_ATTEMPT:
        return outcome(awaited.number, False, f"attempt {awaited.number} is still running")
    if awaited.awaiting is Awaiting.NOTHING:
        assert step_run is not None
        return outcome(None, False, f"step {run.current_step!r} is already {step_run.status}")
    # A dead attempt: redelivering the same attempt closes it as interrupted
    # and retries. Otherwise the next attempt.
    attempt = awaited.number
    if dry_run:
        return outcome(attempt, True, "delivery overdue (dry run: not queued)")
    record_redispatch(run, step or run.current_step, attempt)
    logger.warning(
        "Redispatched attempt %s of step %r of %s run %s: no progress since %s.",
        attempt,
        run.current_step,
        run.workflow,
        run.pk,
        cutoff.isoformat(),
        extra={"run_id": str(run.pk), "workflow": run.workflow, "step": run.current_step},
    )
    return outcome(attempt, True, "delivery overdue")


def _queue_backlog(cutoff: datetime) -> bool:
    """Return whether queued work has waited since before `cutoff` (the queue is behind).

    Stale runs are then behind that work, and queueing them again would
    only grow the backlog. On the transactional ORM broker: a pullable queue
    row older than `cutoff`. With the outbox: a message due before `cutoff`
    that the relay has not handed over (the broker is down or the relay
    behind: the message is kept, not lost), or, on Redis, a queued task
    enqueued before `cutoff` (workers are behind).
    """
    from squidmesh.runtime.dispatcher import DjangoQDispatcher, get_dispatcher

    dispatcher = get_dispatcher()
    if not isinstance(dispatcher, DjangoQDispatcher):
        return False
    from django_q.conf import Conf

    key = settings.CLUSTER or Conf.CLUSTER_NAME
    if dispatcher.transactional:
        from django_q.models import OrmQ

        # Pullable rows have `lock` in the past (a pull leases them into the future).
        pullable: bool = OrmQ.objects.using(Conf.ORM).filter(key=key, lock__lt=cutoff).exists()
        return pullable
    if not dispatcher.uses_outbox:
        return False
    from squidmesh.models import OutboxMessage

    if OutboxMessage.objects.due_by(cutoff).exists():
        return True
    return _oldest_redis_task_enqueued_before(key, cutoff)


def _oldest_redis_task_enqueued_before(key: str, cutoff: datetime) -> bool:
    """Return whether the head of the Redis queue `key` was enqueued before `cutoff`."""
    from django_q.brokers import get_broker
    from django_q.brokers.redis_broker import Redis
    from django_q.signing import BadSignature, SignedPackage

    broker = get_broker(key)
    if not isinstance(broker, Redis):
        return False
    try:
        # The list is FIFO: index 0 is the task waiting longest.
        head = broker.connection.lindex(broker.list_key, 0)
    except Exception as error:  # Redis is away: the outbox keeps new work meanwhile
        logger.warning("Recovery sweep could not read the Redis queue: %s", error)
        return False
    if head is None:
        return False
    try:
        enqueued = SignedPackage.loads(head).get("started")
    except (BadSignature, TypeError, ValueError):
        return False
    return isinstance(enqueued, datetime) and enqueued < cutoff


def scheduled_sweep() -> str:
    """django-q2 schedule entry point: run one sweep and return its summary."""
    sweep = recover_runs()
    if sweep.redispatched:
        logger.warning("Recovery sweep: %s.", sweep.summary())
    return sweep.summary()


def sync_recovery_schedule(using: str = "default") -> str:
    """Create, update or remove the sweep's django-q2 schedule to match the settings.

    Return what was done: "created", "updated", "removed" or "unchanged".
    """
    from django_q.models import Schedule

    from squidmesh.maintenance import keep_schedule

    interval = settings.RECOVERY_INTERVAL
    wanted = {"schedule_type": Schedule.MINUTES, "minutes": int(interval)} if interval else None
    return keep_schedule(SCHEDULE_NAME, SWEEP, wanted, using=using)
