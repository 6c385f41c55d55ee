"""`manage.py squidmesh recover|relay|prune`: the recovery sweep, the outbox relay, retention."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import capfirst

from squidmesh.management.arguments import (
    MAX_RECOVER_LIMIT,
    add_json_argument,
    integer_between,
    positive_days,
    positive_seconds,
)
from squidmesh.management.subcommands.output import write_json
from squidmesh.management.subcommands.waiting import EXIT_INTERRUPTED
from squidmesh.management.tables import render_table
from squidmesh.recovery import recover_runs
from squidmesh.retention import prune_runs
from squidmesh.runtime.relay import Relay, describe_outbox, outbox_status

__all__ = ["HANDLERS", "add_parsers"]


def add_parsers(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recover = subcommands.add_parser(
        "recover",
        help="Queue again the lost delivery of stale active runs.",
        description="Run the recovery sweep once (it also runs every "
        "SQUIDMESH['RECOVERY_INTERVAL'] minutes on django-q2's scheduler): every active "
        "run with no progress for --older-than seconds whose delivery is overdue gets "
        "that delivery queued again. A duplicate delivery is skipped by the executor.",
    )
    recover.add_argument(
        "--older-than",
        type=positive_seconds,
        metavar="SECONDS",
        help="No progress for this long (default SQUIDMESH['RECOVER_AFTER']).",
    )
    recover.add_argument(
        "--limit",
        type=integer_between(1, MAX_RECOVER_LIMIT),
        help="At most this many runs (default SQUIDMESH['RECOVERY_BATCH']).",
    )
    recover.add_argument(
        "--dry-run", action="store_true", help="Show what would be redispatched; queue nothing."
    )
    add_json_argument(recover)

    relay = subcommands.add_parser(
        "relay",
        help="Hand due outbox messages to the broker (Redis and other non-transactional brokers).",
        description="Run the outbox relay in the foreground until interrupted: due "
        "dispatches are moved from squidmesh's outbox table to the django-q2 broker, and "
        "attempts whose worker stopped beating get their delivery re-sent. Each qcluster "
        "already runs one (SQUIDMESH['RELAY_IN_CLUSTER']); several relays share the work.",
    )
    relay.add_argument("--once", action="store_true", help="Hand over what is due now, then exit.")
    relay.add_argument(
        "--status",
        action="store_true",
        help="Print the outbox's state (messages waiting, the relay's lag) and exit.",
    )
    add_json_argument(relay)

    prune = subcommands.add_parser(
        "prune",
        help="Delete runs that ended long ago, with their steps and attempts.",
        description="Delete completed, failed and cancelled runs that finished more than "
        "--older-than days ago (with their step runs and attempts) and failed cron ticks "
        "older than that. Active runs are never deleted. Runs daily by itself when "
        "SQUIDMESH['PRUNE_AFTER_DAYS'] is set.",
    )
    prune.add_argument(
        "--older-than",
        type=positive_days,
        required=True,
        metavar="DAYS",
        help="Finished more than this many days ago (decimals allowed: 0.5 = 12 hours).",
    )
    prune.add_argument("--workflow", help="Only runs (and failed ticks) of this workflow.")
    prune.add_argument(
        "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
    )
    add_json_argument(prune)


def handle_relay(
    command: BaseCommand, *, once: bool, status: bool, as_json: bool, **options: Any
) -> None:
    if status:
        state = outbox_status()
        if as_json:
            write_json(command, state)
            return
        if not state["in_use"]:
            command.stdout.write(
                "The broker is transactional (django-q2's ORM broker on squidmesh's "
                "database): no outbox is used."
            )
        command.stdout.write(describe_outbox(state))
        return
    relay = Relay()
    if once:
        handed_over = 0
        while True:
            result = relay.relay_once()
            handed_over += result.handed_over
            if result.error:
                raise CommandError(f"The broker refused a message: {result.error}")
            if not result.handed_over:
                break
        if as_json:
            write_json(command, {"handed_over": handed_over})
        else:
            command.stdout.write(f"Handed over {handed_over} message(s).")
        return
    command.stdout.write("Relaying the outbox; Ctrl-C stops.")
    try:
        relay.run()
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None


def handle_recover(
    command: BaseCommand,
    *,
    older_than: float | None,
    limit: int | None,
    dry_run: bool,
    as_json: bool,
    **options: Any,
) -> None:
    sweep = recover_runs(older_than=older_than, limit=limit, dry_run=dry_run)
    if as_json:
        write_json(
            command,
            {
                "older_than": sweep.older_than,
                "dry_run": sweep.dry_run,
                "backlog": sweep.backlog,
                "runs": [outcome.as_dict() for outcome in sweep.runs],
            },
        )
        return
    if sweep.runs:
        command.stdout.write(
            render_table(
                ["RUN", "WORKFLOW", "STATUS", "STEP", "ATTEMPT", "ACTION"],
                [
                    (
                        r.run_id,
                        r.workflow,
                        r.status,
                        r.step,
                        r.attempt or "",
                        ("redispatched" if not dry_run else "would redispatch")
                        if r.redispatched
                        else f"left: {r.reason}",
                    )
                    for r in sweep.runs
                ],
            )
        )
    command.stdout.write(sweep.summary() + ".")


def handle_prune(
    command: BaseCommand,
    *,
    older_than: float,
    workflow: str | None,
    dry_run: bool,
    as_json: bool,
    **options: Any,
) -> None:
    pruned = prune_runs(timedelta(days=older_than), workflow=workflow, dry_run=dry_run)
    if as_json:
        write_json(command, pruned.as_dict())
    else:
        command.stdout.write(capfirst(pruned.summary()) + ".")


HANDLERS = {"recover": handle_recover, "relay": handle_relay, "prune": handle_prune}
