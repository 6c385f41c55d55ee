"""The cron sync planner: make django-q2's schedules match the registered cron triggers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import router, transaction
from django.utils import timezone as django_timezone

from squidmesh.conf import settings
from squidmesh.cron_schedules.schedule_rows import (
    FIRE,
    INTENDED_KWARG,
    is_activated,
    owned,
    schedule_key,
    schedule_name,
)
from squidmesh.lifecycle import CronState
from squidmesh.registry import WorkflowRegistry
from squidmesh.registry import registry as default_registry
from squidmesh.workflow.triggers import CronTrigger

if TYPE_CHECKING:
    from django_q.models import Schedule

__all__ = [
    "ACTIVE",
    "DISABLED",
    "INVALID",
    "MISSING",
    "ORPHANED",
    "OUTDATED",
    "Entry",
    "SyncResult",
    "plan",
    "sync_schedules",
]

logger = logging.getLogger("squidmesh.cron")

# What `sync_schedules` does (or did) for a cron trigger (`lifecycle.CronState`).
ACTIVE, MISSING, OUTDATED = CronState.ACTIVE, CronState.MISSING, CronState.OUTDATED
DISABLED, INVALID, ORPHANED = CronState.DISABLED, CronState.INVALID, CronState.ORPHANED


@dataclass
class SyncResult:
    """What `sync_schedules` changed, as `workflow:trigger` labels."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged"
        )


@dataclass
class Entry:
    """One cron trigger (or an orphaned schedule) and its schedule, if any."""

    workflow: str
    trigger: str
    definition: CronTrigger | None
    wanted: bool
    schedule: Schedule | None

    @property
    def label(self) -> str:
        return f"{self.workflow}:{self.trigger}"

    def desired(self) -> dict[str, Any]:
        assert self.definition is not None
        return {
            "name": schedule_name(self.workflow, self.trigger),
            "func": FIRE,
            "hook": None,
            "args": None,
            # A literal dict: django-q2 parses it with ast.literal_eval.
            "kwargs": repr(
                {
                    "workflow": self.workflow,
                    "trigger": self.trigger,
                    "timezone": self.definition.timezone,
                }
            ),
            "schedule_type": "C",  # Schedule.CRON
            "minutes": None,
            "repeats": -1,
            "cron": self.definition.expression,
            "cluster": settings.CLUSTER,
            "intended_date_kwarg": INTENDED_KWARG,
        }

    def changes(self, now: datetime) -> dict[str, Any]:
        """Return the fields of the schedule that differ from the definition."""
        assert self.schedule is not None and self.definition is not None
        changes = {
            name: value
            for name, value in self.desired().items()
            if getattr(self.schedule, name) != value
        }
        if "cron" in changes or "kwargs" in changes or self.schedule.next_run is None:
            changes["next_run"] = self.definition.next_fire_time(now)
        return changes

    @property
    def state(self) -> CronState:
        if self.definition is None or (not self.wanted and self.schedule is not None):
            return ORPHANED
        if not self.wanted:
            return INVALID if self.definition.definition_errors() else DISABLED
        if self.schedule is None:
            return MISSING
        return OUTDATED if self.changes(django_timezone.now()) else ACTIVE


def plan(
    registry: WorkflowRegistry, using: str, *, lock: bool
) -> tuple[list[Entry], list[Schedule]]:
    """Return every cron trigger and orphaned schedule, and the duplicate schedules."""
    from django_q.models import Schedule

    queryset = owned(Schedule.objects.using(using)).order_by("pk")
    if lock:
        queryset = queryset.select_for_update()
    schedules: dict[tuple[str, str], Schedule] = {}
    duplicates = []
    for schedule in queryset:
        key = schedule_key(schedule)
        if key is None or key in schedules:
            duplicates.append(schedule)
        else:
            schedules[key] = schedule
    entries = []
    for workflow in registry.all():
        for trigger in workflow.triggers:
            if not isinstance(trigger, CronTrigger):
                continue
            # A broken trigger is never scheduled: django-q2 would fail on it
            # and roll back every schedule of its batch.
            wanted = is_activated(workflow.name) and not trigger.definition_errors()
            schedule = schedules.pop((workflow.name, trigger.name), None)
            entries.append(Entry(workflow.name, trigger.name, trigger, wanted, schedule))
    for (workflow_name, trigger_name), schedule in schedules.items():
        entries.append(Entry(workflow_name, trigger_name, None, False, schedule))
    return entries, duplicates


def sync_schedules(
    *, registry: WorkflowRegistry | None = None, using: str | None = None, dry_run: bool = False
) -> SyncResult:
    """Make the django-q2 schedules match the cron triggers of the registered workflows.

    Create a schedule per activated cron trigger, update one whose
    expression, time zone or cluster changed (its next run is then
    recomputed), and remove squidmesh schedules no activated trigger wants.
    Schedules squidmesh does not own are never touched. With `dry_run`,
    report what would change and write nothing.
    """
    from django_q.models import Schedule

    using = using or router.db_for_write(Schedule)
    result = SyncResult()
    now = django_timezone.now()
    with transaction.atomic(using=using):
        entries, duplicates = plan(registry or default_registry, using, lock=True)
        doomed = [schedule.pk for schedule in duplicates]
        result.removed += [f"{schedule.name} (duplicate #{schedule.pk})" for schedule in duplicates]
        created = []
        for entry in entries:
            state = entry.state
            if state == ORPHANED:
                assert entry.schedule is not None
                doomed.append(entry.schedule.pk)
                result.removed.append(entry.label)
            elif state == MISSING:
                assert entry.definition is not None
                # bulk_create skips Schedule.save(), which would compute the
                # next run in django-q2's zone rather than the trigger's.
                created.append(
                    Schedule(**entry.desired(), next_run=entry.definition.next_fire_time(now))
                )
                result.created.append(entry.label)
            elif state == OUTDATED:
                assert entry.schedule is not None
                if not dry_run:
                    Schedule.objects.using(using).filter(pk=entry.schedule.pk).update(
                        **entry.changes(now)
                    )
                result.updated.append(entry.label)
            elif state == ACTIVE:
                result.unchanged.append(entry.label)
        if not dry_run:
            Schedule.objects.using(using).filter(pk__in=doomed).delete()
            Schedule.objects.using(using).bulk_create(created)
    if result.changed and not dry_run:
        logger.info("Synced cron schedules: %s", result.summary())
    return result
