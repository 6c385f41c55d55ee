"""Triggers: how runs of a workflow start (`manual`, `cron`)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from squidmesh.workflow.fields import Field, Payload

__all__ = ["CronTrigger", "ManualTrigger", "Trigger", "cron", "manual", "next_fire_time"]

#: Length of django-q2's `Schedule.cron` column, where the expression is stored.
MAX_EXPRESSION_LENGTH = 100


class Trigger:
    """A named entry point of a workflow with its own payload contract."""

    kind = ""

    def __init__(
        self,
        name: str,
        *,
        payload: type[Payload] | Mapping[str, Field] | None = None,
        default: bool = False,
    ):
        if not isinstance(name, str) or not name:
            raise TypeError(f"trigger name must be a non-empty string, got {name!r}")
        self.name = name
        if payload is None:
            payload = Payload.from_mapping({})
        elif isinstance(payload, Mapping):
            payload = Payload.from_mapping(payload)
        elif not (isinstance(payload, type) and issubclass(payload, Payload)):
            raise TypeError(
                f"trigger {name!r}: payload must be a Payload subclass or a mapping of fields"
            )
        self.payload: type[Payload] = payload
        self.default = default

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def clean_payload(self, data: Any) -> dict[str, Any]:
        """Return `data` validated against this trigger's contract (see `Payload.clean`)."""
        return self.payload.clean(data)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "default": self.default,
            "payload": self.payload.describe(),
        }


class ManualTrigger(Trigger):
    kind = "manual"


class CronTrigger(Trigger):
    kind = "cron"

    def __init__(self, name: str, expression: str, *, timezone: str = "UTC", **kwargs: Any):
        super().__init__(name, **kwargs)
        self.expression = expression
        self.timezone = timezone

    def definition_errors(self) -> list[str]:
        """Return what is wrong with the expression or time zone."""
        from croniter import CroniterBadDateError, croniter

        errors = []
        valid_zone = True
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            valid_zone = False
        if not isinstance(self.expression, str) or not croniter.is_valid(self.expression):
            errors.append(f"cron expression {self.expression!r} is not valid")
        elif len(self.expression) > MAX_EXPRESSION_LENGTH:
            errors.append(
                f"cron expression {self.expression!r} is longer than the "
                f"{MAX_EXPRESSION_LENGTH} characters of django-q2's Schedule.cron"
            )
        elif len(self.expression.split()) == 7:
            # django-q2 re-evaluates the expression on every tick; once the
            # years have passed it raises, which rolls back the scheduler's
            # whole batch (every schedule, not just this one) every 30 s.
            errors.append(f"cron expression {self.expression!r} has a year field")
        elif valid_zone:
            try:
                self.next_fire_time(datetime.now(UTC))
            except CroniterBadDateError:
                errors.append(f"cron expression {self.expression!r} never fires")
        if not valid_zone:
            errors.append(f"time zone {self.timezone!r} is not a known IANA zone")
        return errors

    def next_fire_time(self, after: datetime) -> datetime:
        """Return the first fire time (UTC) strictly after `after`, evaluated in the trigger's zone."""
        return next_fire_time(self.expression, self.timezone, after)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "expression": self.expression, "timezone": self.timezone}


def manual(name: str = "manual", **kwargs: Any) -> ManualTrigger:
    """Declare a trigger started through the API (`start_run`)."""
    return ManualTrigger(name, **kwargs)


def cron(
    expression: str, *, name: str = "cron", timezone: str = "UTC", **kwargs: Any
) -> CronTrigger:
    """Declare a trigger that fires on a cron `expression` evaluated in `timezone`."""
    return CronTrigger(name, expression, timezone=timezone, **kwargs)


def next_fire_time(expression: str, timezone: str, after: datetime) -> datetime:
    """Return the first instant (in UTC) after `after` that `expression` matches in `timezone`.

    croniter walks local wall-clock time: a time skipped by a DST change
    fires at the first instant after the gap, a time repeated by one fires
    at each of its two instants (docs/cron.md).
    """
    from croniter import croniter

    zone = zoneinfo.ZoneInfo(timezone)
    local = croniter(expression, after.astimezone(zone)).get_next(datetime)
    # UTC: a local time in a repeated hour (fold=1) never compares equal to
    # an instant in another zone (PEP 495), which would confuse comparisons.
    return local.astimezone(UTC)
