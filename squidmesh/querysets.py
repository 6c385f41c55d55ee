"""QuerySets with the domain verbs used on engine state."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections, models
from django.utils import timezone

from squidmesh.exceptions import InvalidTransition
from squidmesh.lifecycle import ACTIVE_STATUSES, TERMINAL_STATUSES, AttemptStatus, can_transition

if TYPE_CHECKING:
    # StepRun and StepAttempt name the querysets' models in strings, which
    # ruff does not read as a use.
    from squidmesh.models import OutboxMessage, StepAttempt, StepRun, WorkflowRun  # noqa: F401

__all__ = [
    "AttemptQuerySet",
    "OutboxQuerySet",
    "StepRunQuerySet",
    "WorkflowRunQuerySet",
    "run_id_range",
]

#: A run id prefix as the admin list shows it (8 hex digits) or longer, hyphens allowed.
RUN_ID_PREFIX = re.compile(r"^[0-9a-fA-F]{8}[0-9a-fA-F-]{0,28}$")


def run_id_range(word: str) -> models.Q | None:
    """Return the primary-key range of run ids starting with `word`, if it looks like one."""
    if not RUN_ID_PREFIX.match(word):
        return None
    digits = word.replace("-", "").lower()
    if len(digits) > 32:
        return None
    # UUIDs order like their hex digits on Postgres (uuid) and SQLite (char(32)).
    return models.Q(
        pk__gte=uuid.UUID(digits.ljust(32, "0")), pk__lte=uuid.UUID(digits.ljust(32, "f"))
    )


class WorkflowRunQuerySet(models.QuerySet["WorkflowRun"]):
    def active(self) -> WorkflowRunQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def terminal(self) -> WorkflowRunQuerySet:
        return self.filter(status__in=TERMINAL_STATUSES)

    def for_workflow(self, name: str) -> WorkflowRunQuerySet:
        return self.filter(workflow=name)

    def for_trigger(self, name: str) -> WorkflowRunQuerySet:
        return self.filter(trigger=name)

    def with_status(self, status: str) -> WorkflowRunQuerySet:
        return self.filter(status=status)

    def created_between(
        self, after: datetime | None = None, before: datetime | None = None
    ) -> WorkflowRunQuerySet:
        """Return runs created at or after `after` and strictly before `before` (either optional)."""
        queryset = self
        if after is not None:
            queryset = queryset.filter(created_at__gte=after)
        if before is not None:
            queryset = queryset.filter(created_at__lt=before)
        return queryset

    def newest_first(self) -> WorkflowRunQuerySet:
        return self.order_by("-created_at", "-id")

    def with_id_prefix(self, prefix: str) -> WorkflowRunQuerySet:
        """Return the runs whose id starts with `prefix` (8+ hex digits; none otherwise)."""
        id_range = run_id_range(prefix)
        return self.none() if id_range is None else self.filter(id_range)

    def stale(self, older_than: timedelta) -> WorkflowRunQuerySet:
        """Return active runs not updated for `older_than` (candidates for recovery)."""
        return self.active().filter(updated_at__lt=timezone.now() - older_than)

    def locked(self, run_id: Any) -> WorkflowRun | None:
        """Return the run with `run_id` under a row lock (inside a transaction), or None."""
        return self.select_for_update().filter(pk=run_id).first()

    def locked_for_step(self, run_id: Any, step: str) -> WorkflowRun | None:
        """Return the run under a row lock, annotated for claiming `step`, or None.

        `steps_reached` counts its step runs; `step_run_id` is the id of its
        step run for `step` (None if the run never reached it). One query,
        written as SQL: it runs for every delivery, and the ORM's compilation
        of the two correlated subqueries cost several times the query itself.
        """
        from squidmesh.models import StepRun

        try:
            key = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
        except (TypeError, ValueError, AttributeError):
            return None
        connection = connections[self.db]
        quote = connection.ops.quote_name
        runs, step_runs = quote(self.model._meta.db_table), quote(StepRun._meta.db_table)
        lock = " FOR UPDATE OF r" if connection.features.has_select_for_update_of else ""
        sql = (
            f"SELECT r.*, (SELECT COUNT(*) FROM {step_runs} s WHERE s.run_id = r.id) "
            "AS steps_reached, "
            f"(SELECT s.id FROM {step_runs} s WHERE s.run_id = r.id AND s.step = %s) "
            f"AS step_run_id FROM {runs} r WHERE r.id = %s{lock}"
        )
        pk = self.model._meta.pk.get_db_prep_value(key, connection)
        found = list(self.model.objects.db_manager(self.db).raw(sql, [step, pk]))
        if not found:
            return None
        run = found[0]
        # `steps_reached` and `step_run_id` are columns of the raw query, not
        # model fields; SQLite returns the id as a string.
        step_run_id = getattr(run, "step_run_id", None)
        if step_run_id is not None and not isinstance(step_run_id, uuid.UUID):
            run.step_run_id = uuid.UUID(str(step_run_id))
        return run

    def transition(self, run: WorkflowRun, target: str, **changes: Any) -> None:
        """Move `run` to status `target`, compare-and-set on the status it was read with.

        Raise `InvalidTransition` when the lifecycle does not allow the move
        or another writer changed the status first; `run` is updated in
        place on success.
        """
        _stamp_status_change(run, target, changes)
        updated = self.filter(pk=run.pk, status=run.status).update(status=target, **changes)
        if updated != 1:
            raise InvalidTransition(
                f"Run {run.pk} changed status concurrently (expected {run.status}).",
                run_id=run.pk,
                status=run.status,
            )
        run.status = target
        for field, value in changes.items():
            setattr(run, field, value)

    def update_if_unchanged(self, run: WorkflowRun, **changes: Any) -> bool:
        """Write `changes` if nobody wrote the run since `run` was read; return whether it did.

        The optimistic counterpart of `locked()`: compare-and-set on the
        status, current step and `updated_at` that `run` holds (every write
        through these verbs moves `updated_at`). A status in `changes` must
        be an allowed transition. `run` is updated in place on success.
        """
        _stamp_status_change(run, changes.get("status", run.status), changes, same_status_ok=True)
        updated = self.filter(
            pk=run.pk,
            status=run.status,
            current_step=run.current_step,
            updated_at=run.updated_at,
        ).update(**changes)
        if updated:
            for field, value in changes.items():
                setattr(run, field, value)
        return bool(updated)

    def save_progress(self, run: WorkflowRun, **changes: Any) -> bool:
        """Write non-status changes if the run still has the status and step it was read with."""
        changes.setdefault("updated_at", timezone.now())
        updated = self.filter(pk=run.pk, status=run.status, current_step=run.current_step).update(
            **changes
        )
        if updated:
            for field, value in changes.items():
                setattr(run, field, value)
        return bool(updated)


def _stamp_status_change(
    run: WorkflowRun, target: str, changes: dict[str, Any], *, same_status_ok: bool = False
) -> None:
    """Refuse a move the lifecycle forbids; add `updated_at` (and `finished_at`) to `changes`."""
    unchanged = same_status_ok and target == run.status
    if not unchanged and not can_transition(run.status, target):
        raise InvalidTransition(
            f"Run {run.pk} cannot go from {run.status} to {target}.",
            run_id=run.pk,
            status=run.status,
        )
    now = timezone.now()
    changes.setdefault("updated_at", now)
    if target in TERMINAL_STATUSES:
        changes.setdefault("finished_at", now)


class StepRunQuerySet(models.QuerySet["StepRun"]):
    def in_order(self) -> StepRunQuerySet:
        return self.order_by("position", "created_at")


class AttemptQuerySet(models.QuerySet["StepAttempt"]):
    def running(self) -> AttemptQuerySet:
        return self.filter(status=AttemptStatus.RUNNING)

    def started_before(self, moment: datetime) -> AttemptQuerySet:
        return self.filter(started_at__lt=moment)

    def silent_since(self, moment: datetime) -> AttemptQuerySet:
        """Return running attempts whose worker gave no heartbeat since `moment`."""
        return self.running().filter(heartbeat_at__lt=moment)

    def beat_now(self) -> int:
        """Record a sign of life of the workers running these attempts."""
        return self.update(heartbeat_at=timezone.now())

    def close(self, attempt: Any, status: str, **changes: Any) -> bool:
        """Close a running attempt; compare-and-set on `running`, so it closes once."""
        changes.setdefault("finished_at", timezone.now())
        updated = self.filter(pk=attempt.pk, status=AttemptStatus.RUNNING).update(
            status=status, **changes
        )
        if updated:
            attempt.status = status
            for field, value in changes.items():
                setattr(attempt, field, value)
        return bool(updated)


class OutboxQuerySet(models.QuerySet["OutboxMessage"]):
    def due_by(self, moment: datetime) -> OutboxQuerySet:
        return self.filter(due_at__lte=moment).order_by("due_at", "id")

    def claim(self, moment: datetime, limit: int) -> list[OutboxMessage]:
        """Return up to `limit` messages due by `moment`, row-locked, skipping locked ones.

        Call inside a transaction. On SQLite (no row locks) the transaction's
        write lock serializes relays instead (`transaction_mode` IMMEDIATE).
        """
        return list(self.due_by(moment).select_for_update(skip_locked=True)[:limit])

    def oldest_due(self, moment: datetime | None = None) -> datetime | None:
        """Return the due time of the oldest message due by `moment` (default now), or None."""
        moment = moment or timezone.now()
        return self.due_by(moment).values_list("due_at", flat=True).first()

    def next_due(self) -> datetime | None:
        """Return the earliest due time of any message, or None when the outbox is empty."""
        return self.order_by("due_at", "id").values_list("due_at", flat=True).first()
