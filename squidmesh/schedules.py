"""Cron triggers on django-q2: schedule sync, the tick entry point, and what operators see."""

from __future__ import annotations

import ast
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, router, transaction
from django.utils import timezone as django_timezone

from squidmesh.conf import settings
from squidmesh.exceptions import SquidmeshError
from squidmesh.lifecycle import CronState
from squidmesh.registry import WorkflowRegistry
from squidmesh.registry import registry as default_registry
from squidmesh.workflow.triggers import CronTrigger, next_fire_time

if TYPE_CHECKING:
    from django_q.models import Schedule

    from squidmesh.models import WorkflowRun

__all__ = [
    "CONTEXT_KEY",
    "CronTriggerInfo",
    "SyncResult",
    "activation_setting",
    "cron_triggers",
    "fire",
    "is_activated",
    "sync_schedules",
]

logger = logging.getLogger("squidmesh.cron")

#: The django-q2 task every squidmesh schedule calls.
FIRE = "squidmesh.schedules.fire"
#: A schedule is squidmesh's when its name has this prefix *and* its func is `FIRE`.
NAME_PREFIX = "squidmesh:"
#: The key under which a run started by a tick records the tick in its context.
CONTEXT_KEY = "cron"
#: The kwarg through which django-q2 hands `fire` the tick's scheduled time.
INTENDED_KWARG = "intended"
#: Length of django-q2's `Schedule.name`.
MAX_NAME_LENGTH = 100

# What `sync_schedules` does (or did) for a cron trigger (`lifecycle.CronState`).
ACTIVE, MISSING, OUTDATED = CronState.ACTIVE, CronState.MISSING, CronState.OUTDATED
DISABLED, INVALID, ORPHANED = CronState.DISABLED, CronState.INVALID, CronState.ORPHANED


def is_activated(workflow: str) -> bool:
    """Return whether the settings let `workflow`'s cron triggers be scheduled.

    Raise `ImproperlyConfigured` if `SQUIDMESH['CRON_WORKFLOWS']` or
    `['CRON_EXCLUDE']` is not a list of workflow names.
    """
    chosen = activation_setting("CRON_WORKFLOWS")
    return (chosen is None or workflow in chosen) and workflow not in activation_setting(
        "CRON_EXCLUDE"
    )


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


#: Every tick's run has an idempotency key starting with this; it tells the
#: runs a schedule started from runs of the same trigger started by hand.
TICK_KEY_PREFIX = "cron:"


def tick_key(trigger: str, intended: datetime) -> str:
    """Return the idempotency key of the run of one tick (unique per workflow)."""
    return f"{TICK_KEY_PREFIX}{trigger}:{utc_iso(intended)}"


# --- sync -------------------------------------------------------------------


@dataclass
class SyncResult:
    """What `sync_schedules` changed, as `workflow:trigger` labels."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged"
        )


@dataclass
class _Entry:
    """One cron trigger (or an orphaned schedule) and its schedule, if any."""

    workflow: str
    trigger: str
    definition: CronTrigger | None
    wanted: bool
    schedule: Schedule | None

    @property
    def label(self) -> str:
        return f"{self.workflow}:{self.trigger}"

    def desired(self) -> dict[str, Any]:
        assert self.definition is not None
        return {
            "name": schedule_name(self.workflow, self.trigger),
            "func": FIRE,
            "hook": None,
            "args": None,
            # A literal dict: django-q2 parses it with ast.literal_eval.
            "kwargs": repr(
                {
                    "workflow": self.workflow,
                    "trigger": self.trigger,
                    "timezone": self.definition.timezone,
                }
            ),
            "schedule_type": "C",  # Schedule.CRON
            "minutes": None,
            "repeats": -1,
            "cron": self.definition.expression,
            "cluster": settings.CLUSTER,
            "intended_date_kwarg": INTENDED_KWARG,
        }

    def changes(self, now: datetime) -> dict[str, Any]:
        """Return the fields of the schedule that differ from the definition."""
        assert self.schedule is not None
        changes = {
            name: value
            for name, value in self.desired().items()
            if getattr(self.schedule, name) != value
        }
        if "cron" in changes or "kwargs" in changes or self.schedule.next_run is None:
            changes["next_run"] = self.definition.next_fire_time(now)
        return changes

    @property
    def state(self) -> CronState:
        if self.definition is None or (not self.wanted and self.schedule is not None):
            return ORPHANED
        if not self.wanted:
            return INVALID if self.definition.definition_errors() else DISABLED
        if self.schedule is None:
            return MISSING
        return OUTDATED if self.changes(django_timezone.now()) else ACTIVE


def _owned(queryset):
    return queryset.filter(func=FIRE, name__startswith=NAME_PREFIX)


def _schedule_kwargs(schedule: Schedule) -> dict[str, Any]:
    try:
        value = ast.literal_eval(schedule.kwargs or "{}")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _schedule_key(schedule: Schedule) -> tuple[str, str] | None:
    kwargs = _schedule_kwargs(schedule)
    workflow, trigger = kwargs.get("workflow"), kwargs.get("trigger")
    if isinstance(workflow, str) and isinstance(trigger, str):
        return workflow, trigger
    return None


def _plan(registry: WorkflowRegistry, using: str, *, lock: bool) -> tuple[list[_Entry], list]:
    """Return every cron trigger and orphaned schedule, and the duplicate schedules."""
    from django_q.models import Schedule

    queryset = _owned(Schedule.objects.using(using)).order_by("pk")
    if lock:
        queryset = queryset.select_for_update()
    schedules: dict[tuple[str, str], Schedule] = {}
    duplicates = []
    for schedule in queryset:
        key = _schedule_key(schedule)
        if key is None or key in schedules:
            duplicates.append(schedule)
        else:
            schedules[key] = schedule
    entries = []
    for workflow in registry.all():
        for trigger in workflow.triggers:
            if not isinstance(trigger, CronTrigger):
                continue
            # A broken trigger is never scheduled: django-q2 would fail on it
            # and roll back every schedule of its batch.
            wanted = is_activated(workflow.name) and not trigger.definition_errors()
            schedule = schedules.pop((workflow.name, trigger.name), None)
            entries.append(_Entry(workflow.name, trigger.name, trigger, wanted, schedule))
    for (workflow_name, trigger_name), schedule in schedules.items():
        entries.append(_Entry(workflow_name, trigger_name, None, False, schedule))
    return entries, duplicates


def sync_schedules(
    *, registry: WorkflowRegistry | None = None, using: str | None = None, dry_run: bool = False
) -> SyncResult:
    """Make the django-q2 schedules match the cron triggers of the registered workflows.

    Create a schedule per activated cron trigger, update one whose
    expression, time zone or cluster changed (its next run is then
    recomputed), and remove squidmesh schedules no activated trigger wants.
    Schedules squidmesh does not own are never touched. With `dry_run`,
    report what would change and write nothing.
    """
    from django_q.models import Schedule

    using = using or router.db_for_write(Schedule)
    result = SyncResult()
    now = django_timezone.now()
    with transaction.atomic(using=using):
        entries, duplicates = _plan(registry or default_registry, using, lock=True)
        doomed = [schedule.pk for schedule in duplicates]
        result.removed += [f"{schedule.name} (duplicate #{schedule.pk})" for schedule in duplicates]
        created = []
        for entry in entries:
            state = entry.state
            if state == ORPHANED:
                doomed.append(entry.schedule.pk)
                result.removed.append(entry.label)
            elif state == MISSING:
                # bulk_create skips Schedule.save(), which would compute the
                # next run in django-q2's zone rather than the trigger's.
                created.append(
                    Schedule(**entry.desired(), next_run=entry.definition.next_fire_time(now))
                )
                result.created.append(entry.label)
            elif state == OUTDATED:
                if not dry_run:
                    Schedule.objects.using(using).filter(pk=entry.schedule.pk).update(
                        **entry.changes(now)
                    )
                result.updated.append(entry.label)
            elif state == ACTIVE:
                result.unchanged.append(entry.label)
        if not dry_run:
            Schedule.objects.using(using).filter(pk__in=doomed).delete()
            Schedule.objects.using(using).bulk_create(created)
    if result.changed and not dry_run:
        logger.info("Synced cron schedules: %s", result.summary())
    return result


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
            name=name, func=func, next_run=django_timezone.now(), **wanted
        )
        return "created"
    if all(getattr(current, key) == value for key, value in wanted.items()):
        return "unchanged"
    schedules.update(**wanted)
    return "updated"


def sync_after_migrate(sender: Any, using: str = "default", verbosity: int = 1, **kwargs: Any):
    """Sync the cron and maintenance schedules after `migrate` (`post_migrate`, see `apps.py`)."""
    from django.db import connections
    from django_q.models import Schedule

    if using != router.db_for_write(Schedule):
        return
    if Schedule._meta.db_table not in connections[using].introspection.table_names():
        return  # django_q is not migrated (yet) on this database
    from squidmesh.recovery import sync_recovery_schedule
    from squidmesh.retention import sync_prune_schedule

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
        zone = _schedule_kwargs(instance).get("timezone") or "UTC"
        instance.next_run = next_fire_time(instance.cron, zone, now)
    except Exception:
        # This runs inside django-q2's scheduler transaction: raising would
        # roll back every schedule of the batch. django-q2's value stays.
        logger.exception(
            "Could not compute the next run of schedule %s in its trigger's time zone",
            instance.name,
        )


# --- ticks ------------------------------------------------------------------


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
    from squidmesh.api import _create_run, _run_with_key
    from squidmesh.audit import SYSTEM, Audit, EventSource

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
    existing = _run_with_key(definition.name, key)
    if existing is not None:
        return existing, False
    metadata = {
        "trigger": chosen.name,
        "expression": chosen.expression,
        "timezone": chosen.timezone,
        "intended_at": utc_iso(intended),
        "intended_local": intended.astimezone(_zone(chosen.timezone)).isoformat(),
        "started_at": utc_iso(started),
    }
    try:
        run = _create_run(
            definition,
            chosen.name,
            payload,
            idempotency_key=key,
            initial_context={CONTEXT_KEY: metadata},
            audit=Audit(actor=SYSTEM, source=EventSource.CRON),
        )
    except IntegrityError:
        # The same tick delivered concurrently (two workers, two clusters) won the insert.
        existing = _run_with_key(definition.name, key)
        if existing is None:
            raise
        return existing, False
    return run, True


def _fail(workflow: str, trigger: str, intended: datetime, error: SquidmeshError) -> None:
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
        from squidmesh import signals

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


# --- visibility ---------------------------------------------------------------


@dataclass(frozen=True)
class CronTriggerInfo:
    """What operators see of one cron trigger (admin, REST API, `squidmesh_cron list`)."""

    workflow: str
    trigger: str
    expression: str | None
    timezone: str | None
    #: One of active, missing, outdated, disabled, invalid, orphaned (see docs/cron.md).
    state: CronState
    schedule_id: int | None
    #: When django-q2 will next fire the schedule (None without a schedule).
    next_fire_time: datetime | None
    #: Runs started by its ticks (not by hand), newest first: id, status,
    #: created_at, finished_at, intended_at.
    last_runs: list[dict[str, Any]]
    #: The newest failed tick: intended_at, occurred_at, error; or None.
    last_failure: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (datetimes as ISO-8601 strings)."""
        return {
            "workflow": self.workflow,
            "trigger": self.trigger,
            "expression": self.expression,
            "timezone": self.timezone,
            "state": self.state,
            "schedule_id": self.schedule_id,
            "next_fire_time": utc_iso(self.next_fire_time),
            "last_runs": [
                {
                    key: utc_iso(value) if isinstance(value, datetime) else value
                    for key, value in run.items()
                }
                for run in self.last_runs
            ],
            "last_failure": None
            if self.last_failure is None
            else {
                key: utc_iso(value) if isinstance(value, datetime) else value
                for key, value in self.last_failure.items()
            },
        }


def cron_triggers(
    *, runs: int = 5, registry: WorkflowRegistry | None = None, using: str | None = None
) -> list[CronTriggerInfo]:
    """Return every cron trigger of the registered workflows and every orphaned schedule.

    Each comes with its state, its schedule's next fire time, its last
    `runs` runs and its last failed tick, in three queries whatever the
    number of triggers.
    """
    from django_q.models import Schedule

    using = using or router.db_for_read(Schedule)
    entries, _ = _plan(registry or default_registry, using, lock=False)
    keys = [(entry.workflow, entry.trigger) for entry in entries]
    recent = _recent_runs(keys, runs)
    failures = _last_failures(keys)
    infos = []
    for entry in entries:
        schedule = entry.schedule
        expression = entry.definition.expression if entry.definition else schedule.cron
        zone = (
            entry.definition.timezone
            if entry.definition
            else _schedule_kwargs(schedule).get("timezone")
        )
        infos.append(
            CronTriggerInfo(
                workflow=entry.workflow,
                trigger=entry.trigger,
                expression=expression,
                timezone=zone,
                state=entry.state,
                schedule_id=schedule.pk if schedule else None,
                next_fire_time=schedule.next_run if schedule else None,
                last_runs=recent.get((entry.workflow, entry.trigger), []),
                last_failure=failures.get((entry.workflow, entry.trigger)),
            )
        )
    return infos


def _matching(keys: list[tuple[str, str]]):
    from django.db.models import Q

    condition = Q(pk__in=[])
    for workflow, trigger in keys:
        condition |= Q(workflow=workflow, trigger=trigger)
    return condition


def _newest_per_trigger(queryset, order: list, limit: int):
    from django.db.models import F, Window
    from django.db.models.functions import RowNumber

    return queryset.annotate(
        position=Window(RowNumber(), partition_by=[F("workflow"), F("trigger")], order_by=order)
    ).filter(position__lte=limit)


def _recent_runs(keys: list[tuple[str, str]], limit: int) -> dict[tuple[str, str], list[dict]]:
    from django.db.models import F
    from django.db.models.fields.json import KT

    from squidmesh.models import WorkflowRun

    if not keys or limit < 1:
        return {}
    # Only the runs its ticks started: a run of a cron trigger started by
    # hand (`start_run(workflow, ..., trigger="nightly")`) is not the schedule's.
    ticks = WorkflowRun.objects.filter(_matching(keys), idempotency_key__startswith=TICK_KEY_PREFIX)
    rows = (
        _newest_per_trigger(
            ticks,
            [F("created_at").desc(), F("id").desc()],
            limit,
        )
        .annotate(intended_at=KT(f"context__{CONTEXT_KEY}__intended_at"))
        .order_by("workflow", "trigger", "position")
        .values("id", "workflow", "trigger", "status", "created_at", "finished_at", "intended_at")
    )
    recent: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        key = (row.pop("workflow"), row.pop("trigger"))
        row["id"] = str(row["id"])
        recent.setdefault(key, []).append(row)
    return recent


def _last_failures(keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    from django.db.models import F

    from squidmesh.models import CronTickFailure

    if not keys:
        return {}
    rows = _newest_per_trigger(
        CronTickFailure.objects.filter(_matching(keys)),
        [F("intended_at").desc(), F("id").desc()],
        1,
    ).values("workflow", "trigger", "intended_at", "occurred_at", "error")
    return {(row.pop("workflow"), row.pop("trigger")): row for row in rows}


def _zone(name: str):
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


def utc_iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
