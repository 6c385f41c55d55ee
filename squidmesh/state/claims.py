"""The claim rules: which attempt of a step a run waits for, and when a running one is presumed dead.

The executor's claim and the recovery sweep both ask this one question
("latest attempt / presumed dead / expected attempt"), so the answer is
written once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from squidmesh.conf import settings
from squidmesh.lifecycle import AttemptStatus, StepStatus
from squidmesh.models import StepAttempt, StepRun
from squidmesh.runtime import heartbeat
from squidmesh.workflow.steps import Step

__all__ = ["AwaitedAttempt", "Awaiting", "awaited_attempt", "default_timeout", "presumed_dead"]


class Awaiting(enum.Enum):
    """What a run at a step waits for."""

    #: The step run already ended (completed or failed): nothing to run.
    NOTHING = "nothing"
    #: An attempt is `running` in a worker that may still be alive.
    LIVE_ATTEMPT = "live attempt"
    #: An attempt is `running` but its worker must be dead: close it, run again.
    DEAD_ATTEMPT = "dead attempt"
    #: The next attempt (`number`) has not started yet.
    NEXT_ATTEMPT = "next attempt"


@dataclass(frozen=True)
class AwaitedAttempt:
    """The answer of `awaited_attempt`: what the run waits for, and its attempt number."""

    awaiting: Awaiting
    #: The attempt to deliver: the running one, or the next to open.
    number: int
    #: The step run's latest attempt, if any.
    latest: StepAttempt | None


def awaited_attempt(step_run: StepRun | None, step: Step | None) -> AwaitedAttempt:
    """Return which attempt of `step_run` (None: the step was never reached) the run waits for.

    One query (the latest attempt) when the step run exists, none otherwise.
    `step` (None when its definition is gone) gives the timeout a running
    attempt is judged by.
    """
    latest = step_run.attempts.order_by("-number").first() if step_run is not None else None
    if step_run is not None and step_run.status in (StepStatus.COMPLETED, StepStatus.FAILED):
        return AwaitedAttempt(Awaiting.NOTHING, latest.number if latest else 0, latest)
    if latest is not None and latest.status == AttemptStatus.RUNNING:
        alive = not presumed_dead(latest, step)
        return AwaitedAttempt(
            Awaiting.LIVE_ATTEMPT if alive else Awaiting.DEAD_ATTEMPT, latest.number, latest
        )
    return AwaitedAttempt(Awaiting.NEXT_ATTEMPT, latest.number + 1 if latest else 1, latest)


def presumed_dead(attempt: StepAttempt, step: Step | None) -> bool:
    """Return whether the worker that ran a `running` attempt must be dead by now."""
    from django_q.conf import Conf

    now = timezone.now()
    # Without a lease (Redis) a live worker beats every HEARTBEAT_INTERVAL
    # seconds while the body runs; a silent one was killed.
    if attempt.heartbeat_at is not None and heartbeat.enabled():
        silence = timedelta(seconds=settings.HEARTBEAT_TIMEOUT)
        if now > attempt.heartbeat_at + silence:
            return True
    # django-q2 ends a task at its timeout, so an attempt older than the
    # timeout (plus grace for the finishing transaction) has no live worker.
    limit = (step and step.timeout) or default_timeout() or Conf.RETRY
    deadline = attempt.started_at + timedelta(seconds=limit + settings.INTERRUPTED_GRACE)
    return now > deadline


def default_timeout() -> float | None:
    """Return django-q2's task timeout (`Q_CLUSTER["timeout"]`), the limit of a step without one."""
    from django_q.conf import Conf

    timeout: float | None = Conf.TIMEOUT
    return timeout
