"""The invariant checker reports each kind of broken state, naming the run."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django_q.models import OrmQ

import squidmesh
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.testing import drain
from tests.testapp.models import Execution
from verification import invariants

pytestmark = pytest.mark.django_db


def violations(**snapshot_options):
    snapshot = invariants.Snapshot.take(**snapshot_options)
    return {
        name: [(v.run_id, v.detail) for v in found]
        for name, found in invariants.check(snapshot).items()
        if found
    }


def ledger():
    return list(Execution.objects.all())


@pytest.fixture
def completed_run():
    run = squidmesh.start_run("tests.three_steps", {})
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    return run


def test_consistent_runs__no_violation(completed_run):
    squidmesh.start_run("tests.flaky", {"fail_times": 1})  # queued: active, not lost
    drain()  # now retrying, its next attempt queued
    assert violations(ledger=ledger(), expected={str(completed_run.pk): {"completed"}}) == {}


def test_active_run_without_queued_work__is_lost():
    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()
    found = violations()
    assert found == {
        "no run lost or stuck": [(str(run.pk), "pending at step 'a' with no queued work")]
    }


def test_terminal_run_with_an_attempt_still_running__is_stuck(completed_run):
    StepAttempt.objects.filter(run=completed_run, step_run__step="c").update(status="running")
    found = violations()["no run lost or stuck"]
    assert found == [
        (str(completed_run.pk), "run is completed but attempt 1 of 'c' is still running")
    ]


def test_unexpected_terminal_status__is_reported(completed_run):
    found = violations(expected={str(completed_run.pk): {"failed"}})
    assert found["expected terminal status"] == [
        (str(completed_run.pk), "tests.three_steps ended completed, expected failed")
    ]


def test_gap_in_attempt_numbers__is_reported():
    run = squidmesh.start_run("tests.flaky", {"fail_times": 1})
    drain(include_delayed=True)
    StepAttempt.objects.filter(run=run, number=2).update(number=3)
    found = violations()["attempt numbers contiguous"]
    assert found == [(str(run.pk), "step 'flaky': [1, 3]")]


def test_body_run_twice_for_one_attempt_or_after_success__is_a_double_execution(completed_run):
    rows = [
        *ledger(),
        SimpleNamespace(run_id=completed_run.pk, step="b", attempt=1),
        SimpleNamespace(run_id=completed_run.pk, step="c", attempt=2),
    ]
    found = violations(ledger=rows)
    assert found["no double execution"] == [
        (str(completed_run.pk), "body of 'b' attempt 1 ran 2 times"),
        (str(completed_run.pk), "body of 'c' ran as attempt 2 after attempt 1 succeeded"),
    ]
    assert found["every body run is an attempt"] == [
        (str(completed_run.pk), "body of 'c' attempt 2 ran with no attempt row")
    ]


def test_work_after_the_run_ended__is_reported(completed_run):
    ended = completed_run.finished_at
    StepAttempt.objects.filter(run=completed_run, step_run__step="c").update(
        started_at=ended + timedelta(seconds=1)
    )
    late_dispatch = SimpleNamespace(
        run_id=completed_run.pk, step="c", attempt=2, at=ended + timedelta(seconds=2)
    )
    while_cancelling = SimpleNamespace(
        run_id=completed_run.pk, step="d", attempt=1, at=ended, run_status="cancelling"
    )
    found = violations(dispatches=[late_dispatch, while_cancelling])["nothing after terminal"]
    assert [detail for _, detail in found] == [
        "attempt 1 of 'c' started 1.000s after the run ended",
        "'c' attempt 2 dispatched 2.000s after the run became completed",
        "'d' attempt 1 dispatched while the run was cancelling",
    ]


def test_context_not_the_merge_of_succeeded_outputs__is_reported(completed_run):
    WorkflowRun.objects.filter(pk=completed_run.pk).update(context={"a": 1})
    StepRun.objects.filter(run=completed_run, step="c").update(output={"c": 3})
    found = violations()["context = merged outputs"]
    assert len(found) == 1 and found[0][0] == str(completed_run.pk)
    assert "!= merged outputs" in found[0][1]


def test_resend_of_the_dead_attempt_of_a_cancelling_run__is_allowed_while_no_body_runs(
    completed_run,
):
    # Planted: the run was cancelled while its last step ran; the worker died,
    # so the sweep re-sent that attempt, and the re-sent delivery ended the run.
    dead = StepAttempt.objects.get(run=completed_run, step_run__step="c")
    resent_at = dead.started_at + timedelta(seconds=20)
    WorkflowRun.objects.filter(pk=completed_run.pk).update(
        status="cancelled", finished_at=resent_at + timedelta(seconds=1)
    )

    def dispatched_while_cancelling(step, attempt):
        return SimpleNamespace(
            run_id=completed_run.pk,
            step=step,
            attempt=attempt,
            at=resent_at,
            run_status="cancelling",
        )

    def after_terminal(dispatches, rows=()):
        found = violations(ledger=[*ledger(), *rows], dispatches=dispatches)
        return [detail for _, detail in found.get("nothing after terminal", [])]

    resend = dispatched_while_cancelling("c", 1)
    assert after_terminal([resend]) == []
    body_after_resend = SimpleNamespace(
        run_id=completed_run.pk, step="c", attempt=1, started_at=resent_at + timedelta(seconds=1)
    )
    assert after_terminal([resend], [body_after_resend]) == [
        "'c' attempt 1 dispatched while the run was cancelling"
    ]
    # A new attempt, or an attempt of an earlier step, is work after the cancel.
    assert after_terminal([dispatched_while_cancelling("c", 2)]) == [
        "'c' attempt 2 dispatched while the run was cancelling"
    ]
    assert after_terminal([dispatched_while_cancelling("a", 1)]) == [
        "'a' attempt 1 dispatched while the run was cancelling"
    ]


def test_active_run_whose_delivery_waits_in_the_outbox__is_not_lost():
    # On Redis a dispatch waits in squidmesh's outbox until the relay hands it over.
    from django.utils import timezone

    from squidmesh.models import OutboxMessage

    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()
    OutboxMessage.objects.create(
        run_id=run.pk, workflow=run.workflow, step="a", attempt=1, due_at=timezone.now()
    )
    assert violations() == {}
