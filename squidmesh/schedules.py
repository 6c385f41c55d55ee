"""Kept for the django-q2 schedule rows that store `squidmesh.schedules.fire` as their func.

Every squidmesh cron schedule calls this dotted path, and rows written by
earlier versions (and by this one: see `squidmesh.cron_schedules.schedule_rows.FIRE`)
keep calling it. The cron code lives in `squidmesh.cron_schedules`; import from there.
"""

from squidmesh.cron_schedules.ticks import fire

__all__ = ["fire"]
