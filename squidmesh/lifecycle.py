"""Run, step, attempt and cron trigger states and the one table of allowed run transitions."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = [
    "ACTIVE_STATUSES",
    "ALLOWED_TRANSITIONS",
    "TERMINAL_STATUSES",
    "AttemptStatus",
    "CronState",
    "RunStatus",
    "StepStatus",
    "can_transition",
    "sources_of",
]


class RunStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    RETRYING = "retrying", _("Retrying")
    FAILED = "failed", _("Failed")
    COMPLETED = "completed", _("Completed")
    CANCELLING = "cancelling", _("Cancelling")
    CANCELLED = "cancelled", _("Cancelled")


class StepStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    RETRYING = "retrying", _("Waiting to retry")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class AttemptStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    INTERRUPTED = "interrupted", _("Interrupted")


class CronState(models.TextChoices):
    """What `sync_schedules` does (or did) for a cron trigger (`CronTriggerInfo.state`)."""

    #: Its schedule matches the definition.
    ACTIVE = "active", _("Active")
    #: No schedule yet: sync creates it.
    MISSING = "missing", _("Missing")
    #: Expression, time zone or cluster changed: sync updates it.
    OUTDATED = "outdated", _("Outdated")
    #: Opted out by `SQUIDMESH['CRON_WORKFLOWS']` / `['CRON_EXCLUDE']`.
    DISABLED = "disabled", _("Disabled")
    #: The trigger's definition is broken: never scheduled.
    INVALID = "invalid", _("Invalid")
    #: A squidmesh schedule no active trigger wants: sync removes it.
    ORPHANED = "orphaned", _("Orphaned")


# The run lifecycle (docs/architecture.md). Every status write goes through
# `WorkflowRunQuerySet.transition`, which consults this table and
# compare-and-sets on the status it read.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.RETRYING, RunStatus.FAILED, RunStatus.COMPLETED, RunStatus.CANCELLING}
    ),
    RunStatus.RETRYING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLING}),
    RunStatus.CANCELLING: frozenset({RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.FAILED: frozenset(),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

TERMINAL_STATUSES = frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if not targets)
ACTIVE_STATUSES = frozenset(ALLOWED_TRANSITIONS) - TERMINAL_STATUSES


def can_transition(current: str, target: str) -> bool:
    """Return whether a run may move from `current` to `target`."""
    return target in ALLOWED_TRANSITIONS.get(current, frozenset())


def sources_of(target: str) -> frozenset[str]:
    """Return the statuses a run may move to `target` from."""
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)
