"""Every write to run state: runs, step runs, attempts, their events, and the claim rules.

The executor, the API, recovery, retention, the admin and REST change run
state only through this package; the compare-and-set statements themselves
are the QuerySet verbs in `squidmesh/querysets.py`. Each function expects
to be called inside the run's transaction (under its row lock, unless it
says otherwise), so that the state change and the dispatch it implies
commit together.
"""

from squidmesh.state.claims import AwaitedAttempt, Awaiting, awaited_attempt, presumed_dead
from squidmesh.state.runs import (
    StartResult,
    advance_to,
    create_run,
    delete_runs,
    dispatch_step,
    due_after,
    finish_cancellation,
    hand_over_step,
    record_events,
    record_redispatch,
    run_metadata,
    save_context,
    transition_run,
)
from squidmesh.state.steps import (
    WORKER,
    cancel_dead_attempt,
    close_attempt,
    end_step_run,
    fail_removed_step,
    interrupt_attempt,
    open_attempt,
    record_failure,
    record_interruption,
    record_success,
    schedule_retry,
)

__all__ = [
    "WORKER",
    "AwaitedAttempt",
    "Awaiting",
    "StartResult",
    "advance_to",
    "awaited_attempt",
    "cancel_dead_attempt",
    "close_attempt",
    "create_run",
    "delete_runs",
    "dispatch_step",
    "due_after",
    "end_step_run",
    "fail_removed_step",
    "finish_cancellation",
    "hand_over_step",
    "interrupt_attempt",
    "open_attempt",
    "presumed_dead",
    "record_events",
    "record_failure",
    "record_interruption",
    "record_redispatch",
    "record_success",
    "run_metadata",
    "save_context",
    "schedule_retry",
    "transition_run",
]
