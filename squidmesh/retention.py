"""Retention: delete finished runs (with their steps and attempts) and old failed cron ticks.

History grows by one run, a few step runs and attempts per execution; kept
forever it slows nothing squidmesh does (every read is indexed) but costs
disk and backup time. `prune_runs` deletes runs that ended before a cutoff,
oldest first, in batches, each its own transaction, so a large backlog never
holds long locks. Active runs are never touched. It runs daily on django-q2's
scheduler when `SQUIDMESH["PRUNE_AFTER_DAYS"]` is set, and from
`manage.py squidmesh prune`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from squidmesh.conf import settings
from squidmesh.models import CronTickFailure, StepAttempt, StepRun, WorkflowRun
from squidmesh.state import delete_runs

__all__ = ["Pruned", "prune_runs", "sync_prune_schedule"]

logger = logging.getLogger("squidmesh.retention")

SCHEDULE_NAME = "squidmesh:prune"
PRUNE = "squidmesh.retention.scheduled_prune"


@dataclass
class Pruned:
    """What a prune deleted (or, with `dry_run`, would delete)."""

    cutoff: str
    dry_run: bool = False
    runs: int = 0
    step_runs: int = 0
    attempts: int = 0
    cron_tick_failures: int = 0

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"{verb} {self.runs} run(s), {self.step_runs} step run(s), {self.attempts} "
            f"attempt(s) and {self.cron_tick_failures} failed cron tick(s) from before "
            f"{self.cutoff}"
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def prune_runs(
    older_than: timedelta,
    *,
    workflow: str | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
) -> Pruned:
    """Delete runs that finished more than `older_than` ago, with their history.

    Only terminal runs (completed, failed, cancelled) are deleted; replays
    of a deleted run keep existing with `replayed_from` cleared. Failed cron
    ticks older than the cutoff go too (of `workflow` only, if given).
    Deletes `batch_size` runs per transaction, oldest first (by creation).
    """
    if older_than <= timedelta(0):
        raise ValueError("older_than must be a positive duration")
    if batch_size < 1:
        raise ValueError("batch_size must be a positive integer")
    cutoff = timezone.now() - older_than
    pruned = Pruned(cutoff=cutoff.isoformat(timespec="seconds"), dry_run=dry_run)
    # A run finishes after it is created, so `created_at < cutoff` holds for
    # every expired run; it bounds the scan of the creation-time index,
    # which batches walk oldest first (there is no index on finished_at).
    expired = WorkflowRun.objects.terminal().filter(created_at__lt=cutoff, finished_at__lt=cutoff)
    ticks = CronTickFailure.objects.filter(occurred_at__lt=cutoff)
    if workflow is not None:
        expired, ticks = expired.filter(workflow=workflow), ticks.filter(workflow=workflow)
    if dry_run:
        pruned.runs = expired.count()
        pruned.step_runs = StepRun.objects.filter(run__in=expired).count()
        pruned.attempts = StepAttempt.objects.filter(run__in=expired).count()
        pruned.cron_tick_failures = ticks.count()
        return pruned
    position = None
    while position := _delete_batch(expired, batch_size, pruned, after=position):
        pass
    pruned.cron_tick_failures = ticks.delete()[0]
    if pruned.runs or pruned.cron_tick_failures:
        logger.info("Pruned history: %s.", pruned.summary())
    return pruned


def _delete_batch(
    expired: QuerySet[WorkflowRun],
    batch_size: int,
    pruned: Pruned,
    *,
    after: datetime | None = None,
) -> datetime | None:
    """Delete the oldest `batch_size` expired runs created at or after `after`.

    Return the creation time of the last one deleted when the batch was full
    (where the next batch starts: its index scan then skips the entries of
    the rows just deleted, which stay in the index until vacuumed), else None.
    """
    connection = connections[expired.db]
    with transaction.atomic(using=expired.db):
        if after is not None:
            expired = expired.filter(created_at__gte=after)
        batch = expired.order_by("created_at", "id").values_list("pk", "created_at")
        if connection.features.has_select_for_update_skip_locked:
            # A run being replayed holds its row lock: skip it this time
            # rather than deleting the source under the replay's insert.
            batch = batch.select_for_update(skip_locked=True, of=("self",))
        # SQLite caps the parameters of one statement.
        limit = min(batch_size, connection.features.max_query_params or batch_size)
        rows = list(batch[:limit])
        ids = [run_id for run_id, _ in rows]
        if not ids:
            return None
        deleted = delete_runs(ids, using=expired.db)
        pruned.attempts += deleted.attempts
        pruned.step_runs += deleted.step_runs
        pruned.runs += deleted.runs
    return rows[-1][1] if len(rows) == limit else None


def scheduled_prune() -> str:
    """django-q2 schedule entry point: prune with `SQUIDMESH["PRUNE_AFTER_DAYS"]`."""
    days = settings.PRUNE_AFTER_DAYS
    if not days:
        return "pruning is off (SQUIDMESH['PRUNE_AFTER_DAYS'] is not set)"
    return prune_runs(timedelta(days=days)).summary()


def sync_prune_schedule(using: str = "default") -> str:
    """Keep the daily prune schedule in line with `PRUNE_AFTER_DAYS`; return what changed."""
    from django_q.models import Schedule

    from squidmesh.maintenance import keep_schedule

    wanted = {"schedule_type": Schedule.DAILY} if settings.PRUNE_AFTER_DAYS else None
    return keep_schedule(SCHEDULE_NAME, PRUNE, wanted, using=using)
