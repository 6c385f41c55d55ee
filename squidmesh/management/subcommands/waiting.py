"""`--wait`: follow a run the command started to its end, and exit by its outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from squidmesh import api
from squidmesh.lifecycle import RunStatus
from squidmesh.management.subcommands.output import seconds, write_json, write_run
from squidmesh.models import WorkflowRun
from squidmesh.serialization import run_detail

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_RUN_DID_NOT_COMPLETE",
    "EXIT_WAIT_TIMED_OUT",
    "finish",
]

# Exit statuses besides 0 (success), 1 (refused: bad input, unknown
# workflow or run, action not allowed) and 2 (usage error, from argparse).
EXIT_RUN_DID_NOT_COMPLETE = 3
EXIT_WAIT_TIMED_OUT = 4
EXIT_INTERRUPTED = 130  # the shell's status for Ctrl-C

POLL_SECONDS = 0.2
# Print a "still ..." line when a waited run shows no news for this long.
QUIET_SECONDS = 5.0


def finish(
    command: BaseCommand,
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
            write_json(command, run_detail(run))
        else:
            command.stdout.write(message)
        return
    progress(command, message)
    try:
        run, timed_out = follow(command, run, timeout)
    except KeyboardInterrupt:
        raise CommandError(
            f"Stopped waiting; run {run.pk} goes on without this command.",
            returncode=EXIT_INTERRUPTED,
        ) from None
    if as_json:
        write_json(command, run_detail(run, include_history=True))
    else:
        write_run(command, run)
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


def follow(command: BaseCommand, run: WorkflowRun, timeout: float) -> tuple[WorkflowRun, bool]:
    """Poll the run until it ends or `timeout` passes; print every new attempt and status."""
    started = last_news = time.monotonic()
    seen: set[tuple[Any, ...]] = set()
    while True:
        run = api.inspect_run(run.pk, include_history=True)
        now = time.monotonic()
        for key, line in progress_lines(run):
            if key not in seen:
                seen.add(key)
                last_news = now
                progress(command, f"[{now - started:6.1f}s] {line}")
        if run.is_terminal:
            return run, False
        if now - started >= timeout:
            return run, True
        if now - last_news >= QUIET_SECONDS:
            last_news = now
            progress(
                command, f"[{now - started:6.1f}s] still {run.status} at step {run.current_step}"
            )
        time.sleep(POLL_SECONDS)


def progress(command: BaseCommand, line: str) -> None:
    # Progress goes to stderr so that stdout stays the result (JSON with --json).
    command.stderr.write(line, style_func=str)


def progress_lines(run: WorkflowRun) -> Iterator[tuple[tuple[Any, ...], str]]:
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
