"""`manage.py squidmesh start|runs|inspect|cancel|replay`: operate on runs."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from squidmesh import api
from squidmesh.audit import EventSource, cli_actor
from squidmesh.conf import settings
from squidmesh.lifecycle import RunStatus
from squidmesh.management.arguments import (
    add_json_argument,
    add_reason_argument,
    add_run_id_argument,
    add_wait_arguments,
    field_assignment,
    integer_between,
    moment,
    payload_object,
)
from squidmesh.management.subcommands.output import local, write_json, write_run
from squidmesh.management.subcommands.waiting import finish
from squidmesh.management.tables import render_table
from squidmesh.management.terminal import printable
from squidmesh.runtime.dispatcher import get_dispatcher
from squidmesh.runtime.relay import run_outbox
from squidmesh.serialization import run_detail, run_summary

__all__ = ["HANDLERS", "add_parsers"]


def add_parsers(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    start = subcommands.add_parser(
        "start",
        help="Start a run.",
        description="Start a run of WORKFLOW. The payload is --payload (a JSON object) "
        "updated with the FIELD=VALUE arguments; VALUE is read as JSON when it parses "
        '(42, true, [1, 2], "42") and as a plain string otherwise.',
    )
    start.add_argument("workflow", metavar="WORKFLOW", help="Registered workflow name.")
    start.add_argument(
        "fields", metavar="FIELD=VALUE", nargs="*", type=field_assignment, help="Payload field."
    )
    start.add_argument("--trigger", help="Trigger name (default: the workflow's default).")
    start.add_argument("--payload", type=payload_object, help="Payload as a JSON object.")
    start.add_argument(
        "--idempotency-key",
        help="A second start with the same key returns the run the first one started.",
    )
    add_reason_argument(start)
    add_wait_arguments(start)
    add_json_argument(start)

    runs = subcommands.add_parser("runs", help="List runs, newest first.")
    runs.add_argument("--workflow", help="Only runs of this workflow.")
    runs.add_argument("--status", choices=RunStatus.values, help="Only runs in this status.")
    runs.add_argument("--trigger", help="Only runs started through this trigger.")
    runs.add_argument(
        "--created-after", type=moment, metavar="WHEN", help="Created at or after (ISO-8601)."
    )
    runs.add_argument(
        "--created-before", type=moment, metavar="WHEN", help="Created before (ISO-8601)."
    )
    runs.add_argument(
        "--limit",
        type=integer_between(1, lambda: settings.MAX_LIST_LIMIT),
        help="At most this many runs (default SQUIDMESH['LIST_LIMIT'], "
        "at most SQUIDMESH['MAX_LIST_LIMIT']).",
    )
    add_json_argument(runs)

    inspect = subcommands.add_parser("inspect", help="Show a run with its history and events.")
    add_run_id_argument(inspect)
    add_json_argument(inspect)

    cancel = subcommands.add_parser("cancel", help="Cancel a run.")
    add_run_id_argument(cancel)
    add_reason_argument(cancel)
    add_json_argument(cancel)

    replay = subcommands.add_parser(
        "replay", help="Start a new run with a run's workflow, trigger and payload."
    )
    add_run_id_argument(replay)
    replay.add_argument(
        "--idempotency-key",
        help="A second replay of the run with the same key returns the replay the first "
        "one started.",
    )
    add_reason_argument(replay)
    add_wait_arguments(replay)
    add_json_argument(replay)


def audit(reason: str | None) -> dict[str, Any]:
    """Return the `actor`, `source` and `reason` the commands record in a run's events."""
    return {"actor": cli_actor(), "source": EventSource.CLI, "reason": reason}


def handle_start(
    command: BaseCommand,
    *,
    workflow: str,
    fields: list[tuple[str, Any]],
    trigger: str | None,
    payload: dict[str, Any] | None,
    idempotency_key: str | None,
    reason: str | None,
    **options: Any,
) -> None:
    payload = {**(payload or {}), **dict(fields)}
    started = api.start_run_once(
        workflow,
        trigger=trigger,
        payload=payload,
        idempotency_key=idempotency_key,
        **audit(reason),
    )
    run = started.run
    if started.started_now:
        message = f"Started run {run.pk} of {run.workflow} (trigger {run.trigger}): {run.status}"
    else:
        message = (
            f"Idempotency key '{printable(idempotency_key)}' matched run {run.pk} of {run.workflow}, "
            f"started {local(run.created_at)}: {run.status}"
        )
    finish(command, run, message, **options)


def handle_runs(command: BaseCommand, *, as_json: bool, **filters: Any) -> None:
    runs = api.list_runs(
        workflow=filters["workflow"],
        status=filters["status"],
        limit=filters["limit"],
        trigger=filters["trigger"],
        created_after=filters["created_after"],
        created_before=filters["created_before"],
    )
    if as_json:
        write_json(command, [run_summary(run) for run in runs])
    elif not runs:
        command.stdout.write("No runs.")
    else:
        command.stdout.write(
            render_table(
                ["ID", "WORKFLOW", "TRIGGER", "STATUS", "STEP", "CREATED"],
                [
                    (
                        run.pk,
                        run.workflow,
                        run.trigger,
                        run.status,
                        run.current_step,
                        local(run.created_at),
                    )
                    for run in runs
                ],
            )
        )


def handle_inspect(command: BaseCommand, *, run_id: str, as_json: bool, **options: Any) -> None:
    run = api.inspect_run(api.resolve_run_id(run_id), include_history=True)
    # With a non-transactional broker, say whether the run's next
    # delivery still waits in the outbox and how far behind the relay is.
    outbox = run_outbox(run) if get_dispatcher().uses_outbox else None
    if as_json:
        detail = run_detail(run, include_history=True)
        if outbox is not None:
            detail["outbox"] = outbox
        write_json(command, detail)
    else:
        write_run(command, run, outbox)


def handle_cancel(
    command: BaseCommand, *, run_id: str, reason: str | None, as_json: bool, **options: Any
) -> None:
    run = api.cancel_run(api.resolve_run_id(run_id), **audit(reason))
    if as_json:
        write_json(command, run_detail(run))
    elif run.status == RunStatus.CANCELLING:
        command.stdout.write(
            f"Run {run.pk} is cancelling: its executing step may finish, "
            "but the run will not advance."
        )
    else:
        command.stdout.write(f"Run {run.pk} is {run.status}.")


def handle_replay(
    command: BaseCommand,
    *,
    run_id: str,
    idempotency_key: str | None,
    reason: str | None,
    **options: Any,
) -> None:
    started = api.replay_run_once(
        api.resolve_run_id(run_id), idempotency_key=idempotency_key, **audit(reason)
    )
    run = started.run
    if started.started_now:
        message = f"Started run {run.pk} replaying {run.replayed_from_id}: {run.status}"
    else:
        message = (
            f"Idempotency key '{printable(idempotency_key)}' matched run {run.pk}, "
            f"which replayed {run.replayed_from_id} {local(run.created_at)}: {run.status}"
        )
    finish(command, run, message, **options)


HANDLERS = {
    "start": handle_start,
    "runs": handle_runs,
    "inspect": handle_inspect,
    "cancel": handle_cancel,
    "replay": handle_replay,
}
