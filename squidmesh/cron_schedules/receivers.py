"""Signal receivers that keep squidmesh's schedules right.

Connected in `SquidmeshConfig.ready()` (models are loaded by then, so this
module imports recovery and retention at the top).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import router
from django.utils import timezone as django_timezone

from squidmesh.cron_schedules.planner import sync_schedules
from squidmesh.cron_schedules.schedule_rows import FIRE, NAME_PREFIX, schedule_kwargs
from squidmesh.recovery import sync_recovery_schedule
from squidmesh.retention import sync_prune_schedule
from squidmesh.workflow.triggers import next_fire_time

if TYPE_CHECKING:
    from django_q.models import Schedule

__all__ = ["align_next_run", "sync_after_migrate"]

logger = logging.getLogger("squidmesh.cron")


def sync_after_migrate(
    sender: Any, using: str = "default", verbosity: int = 1, **kwargs: Any
) -> None:
    """Sync the cron and maintenance schedules after `migrate` (`post_migrate`, see `apps.py`)."""
    from django.db import connections
    from django_q.models import Schedule

    if using != router.db_for_write(Schedule):
        return
    if Schedule._meta.db_table not in connections[using].introspection.table_names():
        return  # django_q is not migrated (yet) on this database
    result = sync_schedules(using=using)
    maintenance = {
        "recovery sweep": sync_recovery_schedule(using=using),
        "prune": sync_prune_schedule(using=using),
    }
    stdout = kwargs.get("stdout")
    if verbosity >= 1 and stdout is not None:
        if result.changed:
            stdout.write(f"  Synced squidmesh cron schedules: {result.summary()}\n")
        for task, change in maintenance.items():
            if change != "unchanged":
                stdout.write(f"  Squidmesh {task} schedule: {change}\n")


def align_next_run(sender: Any, instance: Schedule, raw: bool = False, **kwargs: Any) -> None:
    """Keep a squidmesh schedule's next run in its trigger's time zone (a `pre_save` receiver).

    django-q2 computes a cron schedule's next run in `Q_CLUSTER['time_zone']`
    for every schedule; its scheduler then saves the row, and this receiver
    replaces the value with the next fire time in the trigger's own zone.
    """
    if (
        raw
        or instance.func != FIRE
        or instance.schedule_type != "C"
        or not (instance.name or "").startswith(NAME_PREFIX)
    ):
        return
    try:
        now = django_timezone.now()
        if instance.next_run is not None and instance.next_run <= now:
            return  # due: a tick still to come, or an operator's "run now" in the admin
        zone = schedule_kwargs(instance).get("timezone") or "UTC"
        instance.next_run = next_fire_time(instance.cron, zone, now)
    except Exception:
        # This runs inside django-q2's scheduler transaction: raising would
        # roll back every schedule of the batch. django-q2's value stays.
        logger.exception(
            "Could not compute the next run of schedule %s in its trigger's time zone",
            instance.name,
        )
