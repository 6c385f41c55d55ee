"""Lifecycle signals, sent after the state change they describe has committed.

Every signal is sent with `sender` = the workflow name and keyword
arguments carrying the metadata listed in docs/reference/signals.md.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import Signal

__all__ = [
    "cron_tick_failed",
    "run_created",
    "run_dispatched",
    "run_replayed",
    "run_transition",
    "send_after_commit",
    "step_completed",
    "step_failed",
    "step_retry_scheduled",
    "step_skipped",
    "step_started",
]

run_created = Signal()
run_replayed = Signal()
run_dispatched = Signal()
run_transition = Signal()
step_started = Signal()
step_skipped = Signal()
step_completed = Signal()
step_failed = Signal()
step_retry_scheduled = Signal()
#: A cron tick could not start its run (no run exists: its own arguments).
cron_tick_failed = Signal()


def send_after_commit(signal: Signal, sender: str, **metadata: Any) -> None:
    """Send `signal` once the current transaction commits (at once outside one).

    A receiver that raises is logged by Django and does not affect the run.
    """
    transaction.on_commit(lambda: signal.send_robust(sender=sender, **metadata), robust=True)
