"""The cron tick: `fire()`, the task every squidmesh cron schedule calls, starts one run."""

from __future__ import annotations

import logging
import zoneinfo
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError
from django.utils import timezone as django_timezone

from squidmesh.cron_schedules.schedule_rows import CONTEXT_KEY, is_activated, tick_key, utc_iso
from squidmesh.exceptions import SquidmeshError
from squidmesh.registry import registry as default_registry
from squidmesh.workflow.triggers import CronTrigger

if TYPE_CHECKING:
    from squidmesh.models import WorkflowRun

__all__ = ["fire"]

logger = logging.getLogger("squidmesh.cron")


def fire(
    workflow: str,
    trigger: str,
    intended: str | None = None,
    timezone: str | None = None,
) -> str | None:
    """Start the run of one cron tick and return its id (the task squidmesh schedules call).

    `intended` is the tick's scheduled time (ISO-8601, handed over by
    django-q2's `intended_date_kwarg`). It is the run's idempotency key, so a
    tick delivered twice, or by two clusters, starts one run, and it is
    recorded with the actual start in the run's context under `"cron"`.

    A tick that cannot start a run (unknown workflow or trigger, a payload
    that fails validation) is logged, recorded as a `CronTickFailure` and
    returns None: it never raises for that. Database errors propagate, so
    django-q2 delivers the task again.
    """
    started = django_timezone.now()
    try:
        moment = datetime.fromisoformat(intended) if intended else started
        if moment.tzinfo is None:
            raise ValueError("no UTC offset")
    except (TypeError, ValueError) as error:
        _fail(
            workflow, trigger, started, SquidmeshError(f"Bad intended time {intended!r}: {error}")
        )
        return None
    extra = {"workflow": workflow, "trigger": trigger, "intended_at": utc_iso(moment)}
    if not is_activated(workflow):
        logger.warning(
            "Cron tick %s:%s at %s ignored: the workflow is opted out of cron "
            "(SQUIDMESH['CRON_WORKFLOWS'] / ['CRON_EXCLUDE']); sync removes its schedule.",
            workflow,
            trigger,
            extra["intended_at"],
            extra=extra,
        )
        return None
    try:
        run, created = _start_tick(workflow, trigger, moment, started, timezone)
    except SquidmeshError as error:
        _fail(workflow, trigger, moment, error)
        return None
    if created:
        logger.info(
            "Cron tick %s:%s at %s started run %s",
            workflow,
            trigger,
            extra["intended_at"],
            run.pk,
            extra={**extra, "run_id": str(run.pk)},
        )
    else:
        logger.info(
            "Cron tick %s:%s at %s delivered again: run %s already started",
            workflow,
            trigger,
            extra["intended_at"],
            run.pk,
            extra={**extra, "run_id": str(run.pk)},
        )
    return str(run.pk)


def _start_tick(
    workflow: str, trigger: str, intended: datetime, started: datetime, schedule_zone: str | None
) -> tuple[WorkflowRun, bool]:
    """Start the run of a tick through the API's run creation; return it and whether it is new."""
    # Imported here: the API needs the models, and this module is imported
    # (through the `squidmesh.schedules` shim) before apps are ready.
    from squidmesh.api import run_with_idempotency_key as run_with_key
    from squidmesh.audit import SYSTEM, Audit, EventSource
    from squidmesh.state import create_run

    definition = default_registry.get(workflow)
    chosen = definition.get_trigger(trigger)
    if not isinstance(chosen, CronTrigger):
        raise SquidmeshError(
            f"Trigger {trigger!r} of workflow {workflow!r} is not a cron trigger; its schedule "
            "is stale (run `manage.py squidmesh_cron sync`)."
        )
    if schedule_zone is not None and schedule_zone != chosen.timezone:
        logger.warning(
            "Schedule of %s:%s uses time zone %s but the trigger now says %s; "
            "run `manage.py squidmesh_cron sync`.",
            workflow,
            trigger,
            schedule_zone,
            chosen.timezone,
        )
    payload = chosen.clean_payload({})
    key = tick_key(chosen.name, intended)
    existing = run_with_key(definition.name, key)
    if existing is not None:
        return existing, False
    metadata = {
        "trigger": chosen.name,
        "expression": chosen.expression,
        "timezone": chosen.timezone,
        "intended_at": utc_iso(intended),
        "intended_local": intended.astimezone(zoneinfo.ZoneInfo(chosen.timezone)).isoformat(),
        "started_at": utc_iso(started),
    }
    try:
        run = create_run(
            definition,
            chosen.name,
            payload,
            idempotency_key=key,
            initial_context={CONTEXT_KEY: metadata},
            audit=Audit(actor=SYSTEM, source=EventSource.CRON),
        )
    except IntegrityError:
        # The same tick delivered concurrently (two workers, two clusters) won the insert.
        existing = run_with_key(definition.name, key)
        if existing is None:
            raise
        return existing, False
    return run, True


def _fail(workflow: str, trigger: str, intended: datetime, error: SquidmeshError) -> None:
    """Record and log a tick that could not start a run (once per tick)."""
    from squidmesh import signals
    from squidmesh.models import CronTickFailure

    details = {
        "type": type(error).__name__,
        "message": str(error),
        "errors": getattr(error, "errors", None),
    }
    _, recorded = CronTickFailure.objects.get_or_create(
        workflow=workflow, trigger=trigger, intended_at=intended, defaults={"error": details}
    )
    if recorded:  # a tick delivered twice fails once
        signals.send_after_commit(
            signals.cron_tick_failed,
            workflow,
            workflow=workflow,
            trigger=trigger,
            intended_at=utc_iso(intended),
            error=details,
        )
    logger.error(
        "Cron tick %s:%s at %s could not start a run: %s",
        workflow,
        trigger,
        utc_iso(intended),
        error,
        extra={
            "workflow": workflow,
            "trigger": trigger,
            "intended_at": utc_iso(intended),
            "error": details,
        },
    )
