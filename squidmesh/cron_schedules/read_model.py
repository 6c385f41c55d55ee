"""What operators see of the cron triggers (admin, REST API, `squidmesh_cron list`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import router
from django.db.models import F, Q, Window
from django.db.models.fields.json import KT
from django.db.models.functions import RowNumber

from squidmesh.cron_schedules.planner import plan
from squidmesh.cron_schedules.schedule_rows import (
    CONTEXT_KEY,
    TICK_KEY_PREFIX,
    schedule_kwargs,
    utc_iso,
)
from squidmesh.lifecycle import CronState
from squidmesh.registry import WorkflowRegistry
from squidmesh.registry import registry as default_registry

if TYPE_CHECKING:
    from django.db.models import OrderBy, QuerySet

__all__ = ["CronTriggerInfo", "cron_triggers"]

TriggerKey = tuple[str, str]


@dataclass(frozen=True)
class CronTriggerInfo:
    """What operators see of one cron trigger (admin, REST API, `squidmesh_cron list`)."""

    workflow: str
    trigger: str
    expression: str | None
    timezone: str | None
    #: One of active, missing, outdated, disabled, invalid, orphaned (see docs/cron.md).
    state: CronState
    schedule_id: int | None
    #: When django-q2 will next fire the schedule (None without a schedule).
    next_fire_time: datetime | None
    #: Runs started by its ticks (not by hand), newest first: id, status,
    #: created_at, finished_at, intended_at.
    last_runs: list[dict[str, Any]]
    #: The newest failed tick: intended_at, occurred_at, error; or None.
    last_failure: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (datetimes as ISO-8601 strings)."""
        return {
            "workflow": self.workflow,
            "trigger": self.trigger,
            "expression": self.expression,
            "timezone": self.timezone,
            "state": self.state,
            "schedule_id": self.schedule_id,
            "next_fire_time": utc_iso(self.next_fire_time),
            "last_runs": [
                {
                    key: utc_iso(value) if isinstance(value, datetime) else value
                    for key, value in run.items()
                }
                for run in self.last_runs
            ],
            "last_failure": None
            if self.last_failure is None
            else {
                key: utc_iso(value) if isinstance(value, datetime) else value
                for key, value in self.last_failure.items()
            },
        }


def cron_triggers(
    *, runs: int = 5, registry: WorkflowRegistry | None = None, using: str | None = None
) -> list[CronTriggerInfo]:
    """Return every cron trigger of the registered workflows and every orphaned schedule.

    Each comes with its state, its schedule's next fire time, its last
    `runs` runs and its last failed tick, in three queries whatever the
    number of triggers.
    """
    from django_q.models import Schedule

    using = using or router.db_for_read(Schedule)
    entries, _ = plan(registry or default_registry, using, lock=False)
    keys = [(entry.workflow, entry.trigger) for entry in entries]
    recent = _recent_runs(keys, runs)
    failures = _last_failures(keys)
    infos = []
    for entry in entries:
        schedule = entry.schedule
        expression: str | None
        zone: str | None
        if entry.definition is not None:
            expression, zone = entry.definition.expression, entry.definition.timezone
        else:  # an orphaned schedule: what its row says
            assert schedule is not None
            expression, zone = schedule.cron, schedule_kwargs(schedule).get("timezone")
        infos.append(
            CronTriggerInfo(
                workflow=entry.workflow,
                trigger=entry.trigger,
                expression=expression,
                timezone=zone,
                state=entry.state,
                schedule_id=schedule.pk if schedule else None,
                next_fire_time=schedule.next_run if schedule else None,
                last_runs=recent.get((entry.workflow, entry.trigger), []),
                last_failure=failures.get((entry.workflow, entry.trigger)),
            )
        )
    return infos


def _matching(keys: list[TriggerKey]) -> Q:
    condition = Q(pk__in=[])
    for workflow, trigger in keys:
        condition |= Q(workflow=workflow, trigger=trigger)
    return condition


def _newest_per_trigger(queryset: QuerySet[Any], order: list[OrderBy], limit: int) -> QuerySet[Any]:
    # The django-stubs plugin types `annotate` of a `QuerySet[Any]` as Any.
    newest: QuerySet[Any] = queryset.annotate(
        position=Window(RowNumber(), partition_by=[F("workflow"), F("trigger")], order_by=order)
    ).filter(position__lte=limit)
    return newest


def _recent_runs(keys: list[TriggerKey], limit: int) -> dict[TriggerKey, list[dict[str, Any]]]:
    from squidmesh.models import WorkflowRun

    if not keys or limit < 1:
        return {}
    # Only the runs its ticks started: a run of a cron trigger started by
    # hand (`start_run(workflow, ..., trigger="nightly")`) is not the schedule's.
    ticks = WorkflowRun.objects.filter(_matching(keys), idempotency_key__startswith=TICK_KEY_PREFIX)
    rows = (
        _newest_per_trigger(
            ticks,
            [F("created_at").desc(), F("id").desc()],
            limit,
        )
        .annotate(intended_at=KT(f"context__{CONTEXT_KEY}__intended_at"))
        .order_by("workflow", "trigger", "position")
        .values("id", "workflow", "trigger", "status", "created_at", "finished_at", "intended_at")
    )
    recent: dict[TriggerKey, list[dict[str, Any]]] = {}
    for row in rows:
        key = (row.pop("workflow"), row.pop("trigger"))
        row["id"] = str(row["id"])
        recent.setdefault(key, []).append(row)
    return recent


def _last_failures(keys: list[TriggerKey]) -> dict[TriggerKey, dict[str, Any]]:
    from squidmesh.models import CronTickFailure

    if not keys:
        return {}
    rows = _newest_per_trigger(
        CronTickFailure.objects.filter(_matching(keys)),
        [F("intended_at").desc(), F("id").desc()],
        1,
    ).values("workflow", "trigger", "intended_at", "occurred_at", "error")
    return {(row.pop("workflow"), row.pop("trigger")): row for row in rows}
