"""What makes a django-q2 schedule squidmesh's cron schedule: its func, name and kwargs.

Shared by the sync planner, the receivers, the tick and the read model; it
imports nothing else of squidmesh's cron code, so none of them import each
other for these names.
"""

from __future__ import annotations

import ast
import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from squidmesh.conf import settings

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django_q.models import Schedule

__all__ = [
    "CONTEXT_KEY",
    "FIRE",
    "NAME_PREFIX",
    "TICK_KEY_PREFIX",
    "activation_setting",
    "is_activated",
    "owned",
    "schedule_key",
    "schedule_kwargs",
    "schedule_name",
    "tick_key",
    "utc_iso",
]

#: The django-q2 task every squidmesh cron schedule calls. It is stored in
#: each `Schedule` row, so this dotted path must keep importing (the
#: `squidmesh.schedules` shim re-exports `fire`).
FIRE = "squidmesh.schedules.fire"
#: A schedule is squidmesh's when its name has this prefix *and* its func is `FIRE`.
NAME_PREFIX = "squidmesh:"
#: The key under which a run started by a tick records the tick in its context.
CONTEXT_KEY = "cron"
#: The kwarg through which django-q2 hands `fire` the tick's scheduled time.
INTENDED_KWARG = "intended"
#: Length of django-q2's `Schedule.name`.
MAX_NAME_LENGTH = 100
#: Every tick's run has an idempotency key starting with this; it tells the
#: runs a schedule started from runs of the same trigger started by hand.
TICK_KEY_PREFIX = "cron:"


def is_activated(workflow: str) -> bool:
    """Return whether the settings let `workflow`'s cron triggers be scheduled.

    Raise `ImproperlyConfigured` if `SQUIDMESH['CRON_WORKFLOWS']` or
    `['CRON_EXCLUDE']` is not a list of workflow names.
    """
    chosen = activation_setting("CRON_WORKFLOWS")
    if chosen is not None and workflow not in chosen:
        return False
    return workflow not in (activation_setting("CRON_EXCLUDE") or frozenset())


def activation_setting(name: str) -> frozenset[str] | None:
    """Return the workflow names of setting `name` (None: every workflow, CRON_WORKFLOWS only)."""
    from django.core.exceptions import ImproperlyConfigured

    value = getattr(settings, name)
    if value is None and name == "CRON_WORKFLOWS":
        return None
    if isinstance(value, list | tuple | set | frozenset) and all(
        isinstance(item, str) for item in value
    ):
        return frozenset(value)
    raise ImproperlyConfigured(
        f"SQUIDMESH[{name!r}] must be a list of workflow names"
        + (" or None" if name == "CRON_WORKFLOWS" else "")
        + f", got {value!r}."
    )


def schedule_name(workflow: str, trigger: str) -> str:
    """Return the name of the django-q2 schedule of `workflow`'s cron trigger `trigger`."""
    name = f"{NAME_PREFIX}{workflow}:{trigger}"
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]
    return f"{name[: MAX_NAME_LENGTH - 11]}~{digest}"


def tick_key(trigger: str, intended: datetime) -> str:
    """Return the idempotency key of the run of one tick (unique per workflow)."""
    return f"{TICK_KEY_PREFIX}{trigger}:{utc_iso(intended)}"


def owned(queryset: QuerySet[Schedule]) -> QuerySet[Schedule]:
    """Return the schedules of `queryset` that are squidmesh's cron schedules."""
    return queryset.filter(func=FIRE, name__startswith=NAME_PREFIX)


def schedule_kwargs(schedule: Schedule) -> dict[str, Any]:
    """Return the kwargs django-q2 stores as a literal for `schedule` ({} if unreadable)."""
    try:
        value = ast.literal_eval(schedule.kwargs or "{}")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def schedule_key(schedule: Schedule) -> tuple[str, str] | None:
    """Return the (workflow, trigger) a squidmesh schedule fires, or None if unreadable."""
    kwargs = schedule_kwargs(schedule)
    workflow, trigger = kwargs.get("workflow"), kwargs.get("trigger")
    if isinstance(workflow, str) and isinstance(trigger, str):
        return workflow, trigger
    return None


def utc_iso(moment: datetime | None) -> str | None:
    """Return `moment` as ISO-8601 in UTC with a `Z` suffix (None stays None)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
