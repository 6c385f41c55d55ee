"""Triggers: how runs of a workflow start (`manual`, `cron`)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from squidmesh.workflow.fields import Field, Payload

__all__ = ["CronTrigger", "ManualTrigger", "Trigger", "cron", "manual"]


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
        from croniter import croniter

        errors = []
        if not isinstance(self.expression, str) or not croniter.is_valid(self.expression):
            errors.append(f"cron expression {self.expression!r} is not valid")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            errors.append(f"time zone {self.timezone!r} is not a known IANA zone")
        return errors

    def next_fire_time(self, after: datetime) -> datetime:
        """Return the first fire time strictly after `after`, evaluated in the trigger's zone."""
        from croniter import croniter

        zone = zoneinfo.ZoneInfo(self.timezone)
        return croniter(self.expression, after.astimezone(zone)).get_next(datetime)

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
