"""The django-q2 schedules of squidmesh's own maintenance tasks (recovery sweep, pruning)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from squidmesh.conf import settings

__all__ = ["keep_schedule"]


def keep_schedule(name: str, func: str, wanted: dict[str, Any] | None, *, using: str) -> str:
    """Make squidmesh's schedule `name` (calling `func`) match `wanted`, or remove it if None.

    For squidmesh's own maintenance tasks (recovery sweep, pruning): a
    schedule is only ever matched by name *and* func, so another app's
    schedule of the same name is left alone. Return "created", "updated",
    "removed" or "unchanged".
    """
    from django_q.models import Schedule

    schedules = Schedule.objects.using(using).filter(name=name, func=func)
    if wanted is None:
        return "removed" if schedules.delete()[0] else "unchanged"
    wanted = {"repeats": -1, "cluster": settings.CLUSTER, **wanted}
    current = schedules.first()
    if current is None:
        Schedule.objects.using(using).create(
            name=name, func=func, next_run=timezone.now(), **wanted
        )
        return "created"
    if all(getattr(current, key) == value for key, value in wanted.items()):
        return "unchanged"
    schedules.update(**wanted)
    return "updated"
