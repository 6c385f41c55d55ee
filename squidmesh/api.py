"""The public runtime API: start, inspect, list, cancel and replay runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet

from squidmesh.audit import Audit, EventKind
from squidmesh.conf import settings
from squidmesh.exceptions import (
    AmbiguousRunId,
    InvalidFilter,
    InvalidIdempotencyKey,
    InvalidTransition,
    RunNotFound,
)
from squidmesh.identifiers import RunId, parse_run_id
from squidmesh.lifecycle import TERMINAL_STATUSES, AttemptStatus, RunStatus
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.querysets import WorkflowRunQuerySet
from squidmesh.registry import registry
from squidmesh.state import (
    StartResult,
    create_run,
    finish_cancellation,
    record_events,
    transition_run,
)
from squidmesh.workflow.base import Workflow

__all__ = [
    "StartResult",
    "cancel_run",
    "filter_runs",
    "inspect_run",
    "list_runs",
    "replay_run",
    "replay_run_once",
    "resolve_run_id",
    "run_with_idempotency_key",
    "start_run",
    "start_run_once",
]

#: Candidates an ambiguous run id prefix lists.
MAX_PREFIX_CANDIDATES = 10

WorkflowRef = type[Workflow] | str

#: The payload of a `start_run` call that passes none. Read-only, so the
#: shared default can never be mutated between calls.
EMPTY_PAYLOAD: Mapping[str, Any] = MappingProxyType({})


def start_run(
    workflow: WorkflowRef,
    payload: Mapping[str, Any] = EMPTY_PAYLOAD,
    *,
    trigger: str | None = None,
    idempotency_key: str | None = None,
    actor: Any = None,
    reason: str | None = None,
    source: str | None = None,
) -> WorkflowRun:
    """Start a run of `workflow` and return it (status `pending`).

    `payload` is a mapping validated against the trigger's contract before
    anything is written; leaving it out means `{}`. The trigger is
    keyword-only (`trigger=`; the workflow's default trigger when omitted),
    so a stray positional string can only be a payload, and is refused as
    one. The run and the dispatch of its entry step commit together.

    With `idempotency_key`, a second call with the same key for the same
    workflow returns the run the first call started; `start_run_once`
    also says which of the two happened.

    A `started` event records `actor` (a user or a string; default
    `"system"`), `source` (an `EventSource`; default `"api"`) and `reason`
    in the run's audit trail, in the transaction that creates the run.

    Raise `UnknownWorkflow`, `UnknownTrigger` or `InvalidPayload` (also for
    an explicit `None` or any payload that is not a mapping),
    `InvalidIdempotencyKey` for a key that is not a string of 1 to 255
    characters, or `InvalidArgument` naming the `actor`, `source` or
    `reason` at fault; nothing is persisted then.
    """
    return start_run_once(
        workflow,
        payload,
        trigger=trigger,
        idempotency_key=idempotency_key,
        actor=actor,
        reason=reason,
        source=source,
    ).run


def start_run_once(
    workflow: WorkflowRef,
    payload: Mapping[str, Any] = EMPTY_PAYLOAD,
    *,
    trigger: str | None = None,
    idempotency_key: str | None = None,
    actor: Any = None,
    reason: str | None = None,
    source: str | None = None,
) -> StartResult:
    """Do what `start_run` does; return the run and whether this call started it.

    `StartResult.started_now` is False when `idempotency_key` matched a run
    started earlier (the REST API answers 200 instead of 201 then).
    """
    definition = registry.get(workflow)
    chosen = definition.get_trigger(trigger)
    cleaned = chosen.clean_payload(payload)
    audit = Audit.of(actor, source, reason)
    if idempotency_key is not None:
        _check_idempotency_key(idempotency_key)
        existing = run_with_idempotency_key(definition.name, idempotency_key)
        if existing is not None:
            return StartResult(existing, started_now=False)
    try:
        run = create_run(
            definition, chosen.name, cleaned, idempotency_key=idempotency_key, audit=audit
        )
    except IntegrityError:
        # A concurrent start with the same idempotency key won the insert.
        existing = (
            run_with_idempotency_key(definition.name, idempotency_key) if idempotency_key else None
        )
        if existing is None:
            raise
        return StartResult(existing, started_now=False)
    return StartResult(run, started_now=True)


def _check_idempotency_key(key: Any) -> None:
    if not isinstance(key, str) or not 0 < len(key) <= 255:
        raise InvalidIdempotencyKey("idempotency_key must be a string of 1 to 255 characters")


def run_with_idempotency_key(workflow: str, key: str) -> WorkflowRun | None:
    """Return the run of `workflow` started with idempotency key `key`, if any."""
    return WorkflowRun.objects.filter(workflow=workflow, idempotency_key=key).first()


def inspect_run(run_id: RunId | str, include_history: bool = False) -> WorkflowRun:
    """Return the run with `run_id`.

    With `include_history`, `run.history` lists its step runs in execution
    order, each with `attempts` in number order, and `run.events.all()` is
    the audit trail, oldest first (four queries in all).
    Raise `RunNotFound` if there is no such run (or the id is malformed).
    """
    queryset = WorkflowRun.objects.all()
    if include_history:
        # `to_attr="history"` fills the `WorkflowRun.history` setter; django-stubs
        # reads it as a new attribute clashing with that property.
        queryset = queryset.prefetch_related(  # type: ignore[no-redef]
            Prefetch(
                "step_runs",
                queryset=StepRun.objects.in_order().prefetch_related(
                    Prefetch("attempts", queryset=StepAttempt.objects.order_by("number"))
                ),
                to_attr="history",
            ),
            "events",
        )
    return _get_run(queryset, run_id)


def resolve_run_id(text: str) -> RunId:
    """Return the id of the run `text` names: a whole run id, or the start of exactly one.

    A prefix is 8 or more hex digits (hyphens allowed), as the admin shows
    and searches ids. Raise `RunNotFound` if no run matches, or
    `AmbiguousRunId` listing the candidates if several do.
    """
    text = str(text).strip()
    try:
        return parse_run_id(text)
    except ValueError:
        pass
    candidates = list(
        WorkflowRun.objects.with_id_prefix(text)
        .order_by("id")
        .values_list("id", flat=True)[: MAX_PREFIX_CANDIDATES + 1]
    )
    if not candidates:
        raise RunNotFound(text)
    if len(candidates) > 1:
        raise AmbiguousRunId(
            text,
            candidates[:MAX_PREFIX_CANDIDATES],
            more=len(candidates) > MAX_PREFIX_CANDIDATES,
        )
    return candidates[0]


def _get_run(queryset: QuerySet[WorkflowRun], run_id: Any) -> WorkflowRun:
    try:
        key = parse_run_id(run_id)
    except ValueError:
        raise RunNotFound(run_id) from None
    run = queryset.filter(pk=key).first()
    if run is None:
        raise RunNotFound(run_id)
    return run


def list_runs(
    workflow: WorkflowRef | None = None,
    status: str | None = None,
    limit: int | None = None,
    *,
    trigger: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[WorkflowRun]:
    """Return runs newest first, optionally of one workflow, status and/or trigger.

    `workflow` may be a class or a name (runs of workflows no longer
    registered are listed too). `created_after` is inclusive,
    `created_before` exclusive. Raise `InvalidFilter` for an unknown status,
    a bound that is not a datetime, bounds that leave no time between them,
    or a limit outside 1..`SQUIDMESH['MAX_LIST_LIMIT']`.
    """
    limit = settings.LIST_LIMIT if limit is None else limit
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 0 < limit <= settings.MAX_LIST_LIMIT
    ):
        raise InvalidFilter(
            f"limit must be an integer from 1 to {settings.MAX_LIST_LIMIT}", field="limit"
        )
    queryset = filter_runs(
        WorkflowRun.objects.newest_first(),
        workflow=workflow,
        status=status,
        trigger=trigger,
        created_after=created_after,
        created_before=created_before,
    )
    return list(queryset[:limit])


def filter_runs(
    queryset: WorkflowRunQuerySet,
    *,
    workflow: WorkflowRef | None = None,
    status: str | None = None,
    trigger: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> WorkflowRunQuerySet:
    """Return `queryset` narrowed by the filters of `list_runs` (which it validates).

    The one place the run filters are checked, shared by `list_runs`, the
    command and the REST API. Raise `InvalidFilter`, whose `field` names
    the filter at fault.
    """
    if workflow is not None:
        name = workflow if isinstance(workflow, str) else getattr(workflow, "name", None)
        if not isinstance(name, str):
            raise InvalidFilter(
                f"workflow must be a Workflow class or a name, got {workflow!r}", field="workflow"
            )
        queryset = queryset.for_workflow(name)
    if status is not None:
        if status not in RunStatus.values:
            raise InvalidFilter(
                f"status {status!r} is not one of {', '.join(RunStatus.values)}", field="status"
            )
        queryset = queryset.with_status(status)
    if trigger is not None:
        if not isinstance(trigger, str):
            raise InvalidFilter(f"trigger must be a name, got {trigger!r}", field="trigger")
        queryset = queryset.for_trigger(trigger)
    for name, bound in (("created_after", created_after), ("created_before", created_before)):
        if bound is not None and not isinstance(bound, datetime):
            raise InvalidFilter(f"{name} must be a datetime, got {bound!r}", field=name)
    if created_after is not None and created_before is not None and created_after >= created_before:
        raise InvalidFilter(
            "created_before must be later than created_after", field="created_before"
        )
    return queryset.created_between(created_after, created_before)


def cancel_run(
    run_id: RunId | str, *, actor: Any = None, reason: str | None = None, source: str | None = None
) -> WorkflowRun:
    """Cancel the run and return it.

    A pending run, or an active run with no step executing (waiting or
    between retries), becomes `cancelled` at once. A run whose step is
    executing becomes `cancelling`; its next delivery makes it `cancelled`
    and nothing further is dispatched. Cancelling a `cancelling` run
    returns it unchanged (and records nothing). Works for runs of workflows
    no longer registered.

    A `cancelled` or `cancel_requested` event records `actor`, `source`
    and `reason` (see `start_run`) in the transaction of the change.

    Raise `RunNotFound`, `InvalidTransition` if the run already ended, or
    `InvalidArgument` for a bad actor, source or reason.
    """
    audit = Audit.of(actor, source, reason)
    with transaction.atomic():
        run = _get_run(WorkflowRun.objects.select_for_update(), run_id)
        if run.status in TERMINAL_STATUSES:
            raise InvalidTransition(
                f"Run {run.pk} is already {run.status} and cannot be cancelled.",
                run_id=run.pk,
                status=run.status,
            )
        if run.status == RunStatus.CANCELLING:
            return run
        previous = run.status
        if run.status == RunStatus.PENDING:
            finish_cancellation(run)
        else:
            transition_run(run, RunStatus.CANCELLING)
            executing = StepAttempt.objects.filter(run=run, status=AttemptStatus.RUNNING).exists()
            if not executing:
                # Nothing is running (a wait or a retry backoff): the queued
                # delivery will find a terminal run and do nothing.
                finish_cancellation(run)
        kind = EventKind.CANCELLED if run.is_terminal else EventKind.CANCEL_REQUESTED
        record_events([audit.event(run, kind, from_status=previous)])
        return run


def replay_run(
    run_id: RunId | str,
    *,
    idempotency_key: str | None = None,
    actor: Any = None,
    reason: str | None = None,
    source: str | None = None,
) -> WorkflowRun:
    """Start a new run with the source run's workflow, trigger and payload; return it.

    The new run links to its source (`replayed_from`) and starts at the
    entry step; the source is untouched but for its audit trail: a
    `replayed` event on the source and a `replay_of` event on the new run
    record `actor`, `source` and `reason` (see `start_run`).

    With `idempotency_key`, a second replay of the same run with the same
    key returns the replay the first one started (`replay_run_once` also
    says which of the two happened), so a double submit starts one run.

    Raise `RunNotFound`, `UnknownWorkflow` if the workflow is no longer
    registered, `UnknownTrigger` / `InvalidPayload` if the definition
    changed since, `InvalidArgument` for a bad actor, source or reason, or
    `InvalidIdempotencyKey` for a malformed key or one already used by a
    run that is not a replay of this one.
    """
    return replay_run_once(
        run_id, idempotency_key=idempotency_key, actor=actor, reason=reason, source=source
    ).run


def replay_run_once(
    run_id: RunId | str,
    *,
    idempotency_key: str | None = None,
    actor: Any = None,
    reason: str | None = None,
    source: str | None = None,
) -> StartResult:
    """Do what `replay_run` does; return the replay and whether this call started it."""
    audit = Audit.of(actor, source, reason)
    if idempotency_key is not None:
        _check_idempotency_key(idempotency_key)
    with transaction.atomic():
        # The row lock keeps `prune_runs` from deleting the source under the
        # new run's reference (it skips locked rows), and serializes two
        # replays of one run, so the second sees the first one's key.
        source_run = _get_run(WorkflowRun.objects.select_for_update(no_key=True), run_id)
        if idempotency_key is not None:
            existing = run_with_idempotency_key(source_run.workflow, idempotency_key)
            if existing is not None:
                if existing.replayed_from_id != source_run.pk:
                    raise InvalidIdempotencyKey(
                        f"Idempotency key {idempotency_key!r} was used by run {existing.pk}, "
                        f"which is not a replay of run {source_run.pk}."
                    )
                return StartResult(existing, started_now=False)
        definition = registry.get(source_run.workflow)
        trigger = definition.get_trigger(source_run.trigger)
        payload = trigger.clean_payload(source_run.payload)
        replay = create_run(
            definition,
            trigger.name,
            payload,
            idempotency_key=idempotency_key,
            replayed_from=source_run,
            audit=audit,
        )
        return StartResult(replay, started_now=True)
