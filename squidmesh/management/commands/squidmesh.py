"""`manage.py squidmesh`: start, list, inspect, cancel and replay runs; list and describe workflows."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import capfirst

from squidmesh import api
from squidmesh.audit import EventSource, cli_actor
from squidmesh.conf import settings
from squidmesh.exceptions import InvalidPayload, SquidmeshError, UnknownWorkflow
from squidmesh.lifecycle import RunStatus
from squidmesh.management.arguments import (
    MAX_RECOVER_LIMIT,
    integer_between,
    positive_days,
    positive_seconds,
)
from squidmesh.management.tables import render_table
from squidmesh.management.terminal import EscapingOutputWrapper, printable
from squidmesh.models import WorkflowRun
from squidmesh.recovery import recover_runs
from squidmesh.registry import registry
from squidmesh.retention import prune_runs
from squidmesh.runtime.dispatcher import get_dispatcher
from squidmesh.runtime.relay import Relay, describe_outbox, outbox_status, run_outbox
from squidmesh.serialization import run_detail, run_summary, workflow_summary


def describe_run_outbox(outbox: dict[str, Any]) -> str:
    waiting = ", ".join(
        f"{m['step']}#{m['attempt']} due {local(m['due_at'])}"
        + (
            f" (broker refused {m['failed_handovers']}x: {m['last_error']})"
            if m["failed_handovers"]
            else ""
        )
        for m in outbox["messages"]
    )
    return f"{waiting or 'nothing waiting'}; relay lag {outbox['lag']:.1f} s"


# Exit statuses besides 0 (success), 1 (refused: bad input, unknown
# workflow or run, action not allowed) and 2 (usage error, from argparse).
EXIT_RUN_DID_NOT_COMPLETE = 3
EXIT_WAIT_TIMED_OUT = 4
EXIT_INTERRUPTED = 130  # the shell's status for Ctrl-C

POLL_SECONDS = 0.2
# Print a "still ..." line when a waited run shows no news for this long.
QUIET_SECONDS = 5.0


def payload_object(text: str) -> dict[str, Any]:
    """argparse type of `--payload`: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from None
    except RecursionError:
        raise argparse.ArgumentTypeError("nested too deeply to decode") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. \'{"order_ref": "A-1"}\'')
    return value


def field_assignment(text: str) -> tuple[str, Any]:
    """argparse type of a `FIELD=VALUE` argument; VALUE is JSON if it parses, else a string."""
    name, equals, raw = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw
    except RecursionError:
        raise argparse.ArgumentTypeError(f"{name}: nested too deeply to decode") from None


def moment(text: str) -> datetime:
    """argparse type of `--created-after/--created-before`: ISO-8601, local time if naive."""
    try:
        value = parse_datetime(text)
    except ValueError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 date or datetime (e.g. 2025-01-31 or 2025-01-31T08:00Z)"
        )
    try:
        value = value if timezone.is_aware(value) else timezone.make_aware(value)
        # The database compares in UTC: 0001-01-01T00:00+01:00 has no UTC time.
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is out of the range of dates") from None
    return value


class SubcommandParser(CommandParser):
    """Accept options between and after `FIELD=VALUE` arguments.

    Plain argparse gives up on `start WORKFLOW --trigger T a=1` (the
    positionals after an option are "unrecognized"); intermixed parsing reads
    it as meant. The flag keeps argparse's own inner calls on the plain path.
    """

    _intermixing = False

    def error(self, message: str):
        # One line on the command line (exit status 2): the usage synopsis
        # of a subcommand spans several lines and buries the message.
        if self.called_from_command_line:
            self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
        super().error(message)

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


class Command(BaseCommand):
    help = (
        "Operate squidmesh workflows: start, runs, inspect, cancel, replay, recover, relay, "
        "prune, workflows, describe. "
        "`manage.py squidmesh SUBCOMMAND --help` explains each one. "
        "Exit status: 0 done, 1 refused (bad input, unknown workflow or run, action not "
        "allowed), 2 usage error, 3 a waited run failed or was cancelled, 4 --wait timed out, "
        "130 --wait interrupted."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        subcommands = parser.add_subparsers(
            dest="subcommand", metavar="SUBCOMMAND", required=True, parser_class=SubcommandParser
        )

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
        self.add_reason_argument(start)
        self.add_wait_arguments(start)
        self.add_json_argument(start)

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
        self.add_json_argument(runs)

        inspect = subcommands.add_parser("inspect", help="Show a run with its history and events.")
        self.add_run_id_argument(inspect)
        self.add_json_argument(inspect)

        cancel = subcommands.add_parser("cancel", help="Cancel a run.")
        self.add_run_id_argument(cancel)
        self.add_reason_argument(cancel)
        self.add_json_argument(cancel)

        replay = subcommands.add_parser(
            "replay", help="Start a new run with a run's workflow, trigger and payload."
        )
        self.add_run_id_argument(replay)
        replay.add_argument(
            "--idempotency-key",
            help="A second replay of the run with the same key returns the replay the first "
            "one started.",
        )
        self.add_reason_argument(replay)
        self.add_wait_arguments(replay)
        self.add_json_argument(replay)

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
        self.add_json_argument(recover)

        relay = subcommands.add_parser(
            "relay",
            help="Hand due outbox messages to the broker (Redis and other non-transactional "
            "brokers).",
            description="Run the outbox relay in the foreground until interrupted: due "
            "dispatches are moved from squidmesh's outbox table to the django-q2 broker, and "
            "attempts whose worker stopped beating get their delivery re-sent. Each qcluster "
            "already runs one (SQUIDMESH['RELAY_IN_CLUSTER']); several relays share the work.",
        )
        relay.add_argument(
            "--once", action="store_true", help="Hand over what is due now, then exit."
        )
        relay.add_argument(
            "--status",
            action="store_true",
            help="Print the outbox's state (messages waiting, the relay's lag) and exit.",
        )
        self.add_json_argument(relay)

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
        self.add_json_argument(prune)

        workflows = subcommands.add_parser("workflows", help="List registered workflows.")
        self.add_json_argument(workflows)

        describe = subcommands.add_parser("describe", help="Show a workflow's definition.")
        describe.add_argument("workflow", metavar="WORKFLOW")
        self.add_json_argument(describe)

    # Every stream the command writes to escapes control characters: runs
    # carry user-provided strings (payloads, idempotency keys, errors).
    @property
    def stdout(self) -> OutputWrapper:
        return self._stdout

    @stdout.setter
    def stdout(self, wrapper: OutputWrapper) -> None:
        self._stdout = EscapingOutputWrapper(wrapper._out, wrapper.ending)

    @property
    def stderr(self) -> OutputWrapper:
        return self._stderr

    @stderr.setter
    def stderr(self, wrapper: OutputWrapper) -> None:
        self._stderr = EscapingOutputWrapper(wrapper._out, wrapper.ending)

    @staticmethod
    def add_run_id_argument(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "run_id",
            metavar="RUN_ID",
            help="The run's id, or its first 8 or more characters if no other run shares them.",
        )

    @staticmethod
    def add_reason_argument(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--reason", help="Why: kept with your OS user name in the run's events."
        )

    @staticmethod
    def add_json_argument(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--json",
            dest="as_json",
            action="store_true",
            help="Print JSON (the REST API's representation) instead of text.",
        )

    @staticmethod
    def add_wait_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Wait until the run ends, printing each attempt and status change to stderr.",
        )
        parser.add_argument(
            "--timeout",
            type=positive_seconds,
            default=300.0,
            help="Seconds --wait waits before giving up (default 300).",
        )

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        with translate_errors():
            getattr(self, f"handle_{subcommand}")(**options)

    # -- subcommands ---------------------------------------------------------

    def handle_start(
        self,
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
        requested_at = timezone.now()
        run = api.start_run(
            workflow,
            trigger=trigger,
            payload=payload,
            idempotency_key=idempotency_key,
            **self.audit(reason),
        )
        if run.created_at >= requested_at:
            message = (
                f"Started run {run.pk} of {run.workflow} (trigger {run.trigger}): {run.status}"
            )
        else:
            message = (
                f"Idempotency key '{printable(idempotency_key)}' matched run {run.pk} of {run.workflow}, "
                f"started {local(run.created_at)}: {run.status}"
            )
        self.finish(run, message, **options)

    def handle_runs(self, *, as_json: bool, **filters: Any) -> None:
        runs = api.list_runs(
            workflow=filters["workflow"],
            status=filters["status"],
            limit=filters["limit"],
            trigger=filters["trigger"],
            created_after=filters["created_after"],
            created_before=filters["created_before"],
        )
        if as_json:
            self.write_json([run_summary(run) for run in runs])
        elif not runs:
            self.stdout.write("No runs.")
        else:
            self.stdout.write(
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

    def handle_inspect(self, *, run_id: str, as_json: bool, **options: Any) -> None:
        run = api.inspect_run(api.resolve_run_id(run_id), include_history=True)
        # With a non-transactional broker, say whether the run's next
        # delivery still waits in the outbox and how far behind the relay is.
        outbox = run_outbox(run) if get_dispatcher().uses_outbox else None
        if as_json:
            detail = run_detail(run, include_history=True)
            if outbox is not None:
                detail["outbox"] = outbox
            self.write_json(detail)
        else:
            self.write_run(run, outbox)

    def handle_cancel(
        self, *, run_id: str, reason: str | None, as_json: bool, **options: Any
    ) -> None:
        run = api.cancel_run(api.resolve_run_id(run_id), **self.audit(reason))
        if as_json:
            self.write_json(run_detail(run))
        elif run.status == RunStatus.CANCELLING:
            self.stdout.write(
                f"Run {run.pk} is cancelling: its executing step may finish, "
                "but the run will not advance."
            )
        else:
            self.stdout.write(f"Run {run.pk} is {run.status}.")

    def handle_replay(
        self, *, run_id: str, idempotency_key: str | None, reason: str | None, **options: Any
    ) -> None:
        started = api.replay_run_once(
            api.resolve_run_id(run_id), idempotency_key=idempotency_key, **self.audit(reason)
        )
        run = started.run
        if started.started_now:
            message = f"Started run {run.pk} replaying {run.replayed_from_id}: {run.status}"
        else:
            message = (
                f"Idempotency key '{printable(idempotency_key)}' matched run {run.pk}, "
                f"which replayed {run.replayed_from_id} {local(run.created_at)}: {run.status}"
            )
        self.finish(run, message, **options)

    def handle_relay(self, *, once: bool, status: bool, as_json: bool, **options: Any) -> None:
        if status:
            state = outbox_status()
            if as_json:
                self.write_json(state)
                return
            if not state["in_use"]:
                self.stdout.write(
                    "The broker is transactional (django-q2's ORM broker on squidmesh's "
                    "database): no outbox is used."
                )
            self.stdout.write(describe_outbox(state))
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
                self.write_json({"handed_over": handed_over})
            else:
                self.stdout.write(f"Handed over {handed_over} message(s).")
            return
        self.stdout.write("Relaying the outbox; Ctrl-C stops.")
        try:
            relay.run()
        except KeyboardInterrupt:
            raise SystemExit(EXIT_INTERRUPTED) from None

    def handle_recover(
        self,
        *,
        older_than: float | None,
        limit: int | None,
        dry_run: bool,
        as_json: bool,
        **options: Any,
    ) -> None:
        sweep = recover_runs(older_than=older_than, limit=limit, dry_run=dry_run)
        if as_json:
            self.write_json(
                {
                    "older_than": sweep.older_than,
                    "dry_run": sweep.dry_run,
                    "backlog": sweep.backlog,
                    "runs": [outcome.as_dict() for outcome in sweep.runs],
                }
            )
            return
        if sweep.runs:
            self.stdout.write(
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
        self.stdout.write(sweep.summary() + ".")

    def handle_prune(
        self,
        *,
        older_than: float,
        workflow: str | None,
        dry_run: bool,
        as_json: bool,
        **options: Any,
    ) -> None:
        pruned = prune_runs(timedelta(days=older_than), workflow=workflow, dry_run=dry_run)
        if as_json:
            self.write_json(pruned.as_dict())
        else:
            self.stdout.write(capfirst(pruned.summary()) + ".")

    def handle_workflows(self, *, as_json: bool, **options: Any) -> None:
        summaries = [workflow_summary(workflow) for workflow in registry.all()]
        if as_json:
            self.write_json(summaries)
        elif not summaries:
            self.stdout.write("No workflows are registered.")
        else:
            self.stdout.write(
                render_table(
                    ["NAME", "TRIGGERS", "STEPS", "DESCRIPTION"],
                    [
                        (s["name"], ", ".join(s["triggers"]), len(s["steps"]), s["description"])
                        for s in summaries
                    ],
                )
            )

    def handle_describe(self, *, workflow: str, as_json: bool, **options: Any) -> None:
        definition = registry.get(workflow).describe()
        if as_json:
            self.write_json(definition)
            return
        title = definition["name"]
        if definition["description"]:
            title += f" — {definition['description']}"
        lines = [title, f"Entry step: {definition['entry_step']}"]
        for trigger in definition["triggers"]:
            kind = trigger["type"]
            if "expression" in trigger:
                kind += f" {trigger['expression']!r} {trigger['timezone']}"
            lines += [
                "",
                f"Trigger {trigger['name']} ({kind}{', default' if trigger['default'] else ''})",
            ]
            if trigger["payload"]:
                lines += indent(
                    render_table(
                        ["FIELD", "TYPE", "REQUIRED", "DEFAULT", "HELP"],
                        [
                            (
                                field["name"],
                                field["type"]
                                + (f" {field['choices']}" if "choices" in field else ""),
                                "yes" if field["required"] else "no",
                                json.dumps(field["default"]) if "default" in field else None,
                                field.get("help_text"),
                            )
                            for field in trigger["payload"]
                        ],
                    )
                )
            else:
                lines.append("  (no payload fields)")
        lines += ["", "Steps"]
        lines += indent(
            render_table(
                ["STEP", "KIND", "ON OK", "ON ERROR", "RETRY", "TIMEOUT", "DESCRIPTION"],
                [
                    (
                        step["name"],
                        step["kind"],
                        step["on_ok"],
                        step["on_error"],
                        describe_retry(step["retry"]),
                        f"{step['timeout']:g}s" if step["timeout"] else None,
                        step["description"],
                    )
                    for step in definition["steps"]
                ],
            )
        )
        self.stdout.write("\n".join(lines))

    @staticmethod
    def audit(reason: str | None) -> dict[str, Any]:
        """Return the `actor`, `source` and `reason` the commands record in a run's events."""
        return {"actor": cli_actor(), "source": EventSource.CLI, "reason": reason}

    # -- output --------------------------------------------------------------

    def finish(
        self,
        run: WorkflowRun,
        message: str,
        *,
        as_json: bool,
        wait: bool,
        timeout: float,
        **options: Any,
    ) -> None:
        """Print a started run; with `wait`, follow it to its end and exit by its outcome."""
        if not wait:
            if as_json:
                self.write_json(run_detail(run))
            else:
                self.stdout.write(message)
            return
        self.progress(message)
        try:
            run, timed_out = self.follow(run, timeout)
        except KeyboardInterrupt:
            raise CommandError(
                f"Stopped waiting; run {run.pk} goes on without this command.",
                returncode=EXIT_INTERRUPTED,
            ) from None
        if as_json:
            self.write_json(run_detail(run, include_history=True))
        else:
            self.write_run(run)
        if timed_out:
            raise CommandError(
                f"Run {run.pk} is still {run.status} (step {run.current_step}) after "
                f"{timeout:g}s; it goes on without this command. Is a worker "
                "(manage.py qcluster) running?",
                returncode=EXIT_WAIT_TIMED_OUT,
            )
        if run.status != RunStatus.COMPLETED:
            reason = f": {run.last_error['message']}" if run.last_error else "."
            raise CommandError(
                f"Run {run.pk} {run.status}{reason}", returncode=EXIT_RUN_DID_NOT_COMPLETE
            )

    def follow(self, run: WorkflowRun, timeout: float) -> tuple[WorkflowRun, bool]:
        """Poll the run until it ends or `timeout` passes; print every new attempt and status."""
        started = last_news = time.monotonic()
        seen: set[tuple] = set()
        while True:
            run = api.inspect_run(run.pk, include_history=True)
            now = time.monotonic()
            for key, line in progress_lines(run):
                if key not in seen:
                    seen.add(key)
                    last_news = now
                    self.progress(f"[{now - started:6.1f}s] {line}")
            if run.is_terminal:
                return run, False
            if now - started >= timeout:
                return run, True
            if now - last_news >= QUIET_SECONDS:
                last_news = now
                self.progress(
                    f"[{now - started:6.1f}s] still {run.status} at step {run.current_step}"
                )
            time.sleep(POLL_SECONDS)

    def progress(self, line: str) -> None:
        # Progress goes to stderr so that stdout stays the result (JSON with --json).
        self.stderr.write(line, style_func=str)

    def write_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, cls=DjangoJSONEncoder))

    def write_run(self, run: WorkflowRun, outbox: dict[str, Any] | None = None) -> None:
        """Print a run returned by `inspect_run(..., include_history=True)`."""
        rows = [
            ("Run", run.pk),
            ("Workflow", run.workflow),
            ("Trigger", run.trigger),
            ("Status", run.status),
            ("Current step", run.current_step),
            ("Created", local(run.created_at)),
            ("Started", local(run.started_at)),
            ("Finished", local(run.finished_at)),
            ("Next delivery", local(run.scheduled_for)),
            ("Duration", seconds(run.duration)),
            ("Replayed from", run.replayed_from_id),
            ("Idempotency key", run.idempotency_key),
            ("Payload", json.dumps(run.payload, cls=DjangoJSONEncoder)),
            ("Context", json.dumps(run.context, cls=DjangoJSONEncoder)),
            ("Last error", run.last_error["message"] if run.last_error else None),
        ]
        if outbox is not None:
            rows.append(("Outbox", describe_run_outbox(outbox)))
        width = max(len(label) for label, _ in rows)
        lines = [
            f"{label.ljust(width)}  {'-' if value is None else printable(value)}"
            for label, value in rows
        ]
        lines += ["", "History"]
        history = []
        for step_run in run.history:
            attempts = list(step_run.attempts.all()) or [None]
            for index, attempt in enumerate(attempts):
                first = index == 0
                history.append(
                    (
                        step_run.position if first else "",
                        step_run.step if first else "",
                        step_run.status if first else "",
                        attempt.number if attempt else None,
                        attempt.status if attempt else None,
                        local(attempt.started_at) if attempt else None,
                        seconds(attempt.duration) if attempt else None,
                        (attempt.error or {}).get("message") if attempt else None,
                    )
                )
        if history:
            lines += indent(
                render_table(
                    ["#", "STEP", "STATUS", "ATTEMPT", "RESULT", "STARTED", "TOOK", "ERROR"],
                    history,
                )
            )
        else:
            lines.append("  (no step has run yet)")
        lines += ["", "Events"]
        events = [
            (
                local(event.created_at),
                event.kind,
                event.actor,
                event.source,
                event.reason or None,
                json.dumps(event.data, cls=DjangoJSONEncoder) if event.data else None,
            )
            for event in run.events.all()
        ]
        if events:
            lines += indent(
                render_table(["WHEN", "EVENT", "ACTOR", "SOURCE", "REASON", "DATA"], events)
            )
        else:
            lines.append("  (no events recorded)")
        self.stdout.write("\n".join(lines))


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn squidmesh's refusals into `CommandError`s: a message and exit status 1."""
    try:
        yield
    except InvalidPayload as error:
        fields = "\n".join(
            f"  {'(payload)' if field == '__all__' else field}: {message}"
            for field, message in error.errors.items()
        )
        raise CommandError(f"Invalid payload:\n{fields}") from None
    except UnknownWorkflow as error:
        known = ", ".join(registry.names()) or "(none)"
        raise CommandError(f"{error} Registered workflows: {known}.") from None
    except SquidmeshError as error:
        raise CommandError(str(error)) from None


def progress_lines(run: WorkflowRun) -> Iterator[tuple[tuple, str]]:
    """Yield `(key, line)` for each attempt state and the run's status; keys identify news."""
    for step_run in run.history:
        for attempt in step_run.attempts.all():
            line = f"{step_run.step} attempt {attempt.number}: {attempt.status}"
            if attempt.duration is not None:
                line += f" in {seconds(attempt.duration)}"
            if attempt.error:
                line += f" — {attempt.error.get('message')}"
            yield (step_run.step, attempt.number, attempt.status), line
    yield ("run", run.status), f"run is {run.status}"


def describe_retry(retry: dict[str, Any]) -> str | None:
    if retry["max_attempts"] <= 1:
        return None
    backoff = f"{retry['backoff_min']:g}-{retry['backoff_max']:g}s"
    return f"{retry['max_attempts']} attempts, {backoff}{' jitter' if retry['jitter'] else ''}"


def local(value: datetime | None) -> str | None:
    return None if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value) -> str | None:
    return None if value is None else f"{value.total_seconds():.3f}s"


def indent(text: str) -> list[str]:
    return [f"  {line}" for line in text.splitlines()]
