"""The audit trail: who did what to a run, from where and why (`RunEvent` rows)."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from squidmesh.exceptions import InvalidArgument

if TYPE_CHECKING:
    from squidmesh.models import RunEvent, WorkflowRun

__all__ = ["SYSTEM", "Audit", "EventKind", "EventSource", "actor_name", "cli_actor"]

#: The actor of what squidmesh does by itself (cron ticks, the recovery sweep)
#: and of API calls that name no actor.
SYSTEM = "system"
MAX_ACTOR_LENGTH = 200
MAX_REASON_LENGTH = 2000


class EventKind(models.TextChoices):
    STARTED = "started", _("Started")
    CANCEL_REQUESTED = "cancel_requested", _("Cancel requested")
    CANCELLED = "cancelled", _("Cancelled")
    #: On the source run: it was replayed (`data["replay"]` is the new run).
    REPLAYED = "replayed", _("Replayed")
    #: On the new run: it started as a replay (`data["source"]` is the source run).
    REPLAY_OF = "replay_of", _("Started as a replay")
    REDISPATCHED = "redispatched", _("Delivery queued again")
    # Written by the approval, resume and event features; declared here so that
    # they need no migration of this table.
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    RESUMED = "resumed", _("Resumed")
    EVENT_RECEIVED = "event_received", _("Event received")


class EventSource(models.TextChoices):
    API = "api", _("Python API")
    ADMIN = "admin", _("Admin")
    REST = "rest", _("REST API")
    CLI = "cli", _("Command line")
    CRON = "cron", _("Cron")
    RECOVERY = "recovery", _("Recovery sweep")


@dataclass(frozen=True)
class Audit:
    """Who asks for a change, through which surface and why: validated before anything is written."""

    actor: str = SYSTEM
    source: str = EventSource.API
    reason: str = ""

    @classmethod
    def of(cls, actor: Any = None, source: Any = None, reason: Any = None) -> Audit:
        """Return the audit of an API call's `actor=`, `source=` and `reason=`.

        `actor` is a string or a Django user (recorded by username). Raise
        `InvalidArgument` naming the argument for anything else.
        """
        if actor is None:
            actor = SYSTEM
        elif hasattr(actor, "get_username"):
            actor = actor_name(actor)
        if not isinstance(actor, str) or not 0 < len(actor) <= MAX_ACTOR_LENGTH:
            raise InvalidArgument(
                f"actor must be a user or a string of 1 to {MAX_ACTOR_LENGTH} characters",
                field="actor",
            )
        source = EventSource.API if source is None else source
        if source not in EventSource.values:
            raise InvalidArgument(
                f"source {source!r} is not one of {', '.join(EventSource.values)}", field="source"
            )
        reason = "" if reason is None else reason
        if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
            raise InvalidArgument(
                f"reason must be a string of at most {MAX_REASON_LENGTH} characters",
                field="reason",
            )
        return cls(actor=actor, source=str(source), reason=reason)

    def event(self, run: WorkflowRun, kind: str, **data: Any) -> RunEvent:
        """Return an unsaved event of `kind` on `run` (`squidmesh.state.record_events` saves it)."""
        from squidmesh.models import RunEvent

        return RunEvent(
            run=run,
            kind=kind,
            actor=self.actor,
            source=self.source,
            reason=self.reason,
            data=data,
        )


def actor_name(user: Any) -> str:
    """Return how the audit trail names a Django user: the username, or "anonymous"."""
    if user is None or not getattr(user, "is_authenticated", False):
        return "anonymous"
    # A custom user model may allow an empty username; the pk still says who.
    return (user.get_username() or f"user {user.pk}")[:MAX_ACTOR_LENGTH]


def cli_actor() -> str:
    """Return the actor of a management command: `cli:<operating-system user>`."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        name = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{name}"[:MAX_ACTOR_LENGTH]
