"""Continuing a run inline (`SQUIDMESH['INLINE_STEPS']`), driven as a django-q2 worker would."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

import squidmesh
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.runtime import delivery, executor
from squidmesh.runtime.executor import execute_step
from tests.testapp import workflows
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db


@pytest.fixture
def worker(monkeypatch):
    """Make this process look like a django-q2 worker; record the timeouts it is given."""
    rearmed = []
    monkeypatch.setattr(executor, "worker_timer_available", lambda: True)
    monkeypatch.setattr(executor, "rearm_timeout", rearmed.append)

    def deliver(row: OrmQ) -> str:
        """Run the task in `row` the way django-q2's worker does, pre_execute signal included."""
        task = row.task
        delivery._remember_delivery("django_q", execute_step, {**task, "ack_id": row.pk})
        return execute_step(*task["args"])

    deliver.rearmed = rearmed
    yield deliver
    delivery._current = None


def steps_of(run):
    return list(
        StepRun.objects.filter(run_id=run.pk)
        .order_by("position")
        .values_list("position", "step", "status", "attempt_count")
    )


@override_settings(SQUIDMESH={"INLINE_STEPS": 10})
def test_inline__three_steps_run_in_one_delivery_each_with_its_own_attempt(worker):
    run = squidmesh.start_run("tests.three_steps", {"label": "L"})
    row = OrmQ.objects.get()
    assert worker(row) == "completed (2 inline)"
    run.refresh_from_db()
    assert run.status == "completed" and run.current_step is None
    assert run.context == {"a": 1, "seen": ["L"], "b": 2, "c": 3}
    assert steps_of(run) == [
        (1, "a", "completed", 1),
        (2, "b", "completed", 1),
        (3, "c", "completed", 1),
    ]
    assert StepAttempt.objects.filter(run_id=run.pk, status="succeeded").count() == 3
    # No new queue row: the held one was rewritten, and django-q2's monitor
    # deletes it once the task returns.
    assert list(OrmQ.objects.values_list("pk", flat=True)) == [row.pk]
    assert OrmQ.objects.get().task["args"] == (str(run.pk), "c", 1)


@override_settings(SQUIDMESH={"INLINE_STEPS": 10})
def test_inline__held_row_carries_the_running_step_with_a_fresh_lease(worker, monkeypatch):
    seen = {}
    original = workflows.ThreeSteps.steps["b"].target

    def step_b(data, ctx):
        row = OrmQ.objects.get()
        attempt = StepAttempt.objects.get(run_id=ctx.run_id, step_run__step="b")
        seen.update(args=row.task["args"], lock=row.lock, attempt=attempt.status)
        return original(data, ctx)

    monkeypatch.setattr(workflows.ThreeSteps.steps["b"], "target", step_b)
    run = squidmesh.start_run("tests.three_steps", {})
    before = timezone.now()
    worker(OrmQ.objects.get())
    # While b runs, its claim is committed and the row says "b": a worker
    # that dies here is redelivered b once the lease ends, like any task.
    assert seen["args"] == (str(run.pk), "b", 1)
    assert seen["attempt"] == "running"
    assert seen["lock"] >= before + timedelta(seconds=Conf.RETRY - 1)


@override_settings(SQUIDMESH={"INLINE_STEPS": 10})
def test_inline__a_wait_goes_back_to_the_queue_with_its_due_time(worker):
    run = squidmesh.start_run("tests.waiting", {})
    held = OrmQ.objects.get()
    assert worker(held) == "completed"
    run.refresh_from_db()
    assert (run.status, run.current_step) == ("running", "pause")
    delayed = OrmQ.objects.exclude(pk=held.pk).get()
    assert delayed.task["args"] == (str(run.pk), "pause", 1)
    assert delayed.lock > timezone.now() + timedelta(seconds=1)


@override_settings(SQUIDMESH={"INLINE_STEPS": 1})
def test_inline__at_most_INLINE_STEPS_more_steps_per_delivery(worker):
    run = squidmesh.start_run("tests.three_steps", {})
    held = OrmQ.objects.get()
    assert worker(held) == "completed (1 inline)"
    assert [s[1] for s in steps_of(run)] == ["a", "b"]
    queued = OrmQ.objects.exclude(pk=held.pk).get()
    assert queued.task["args"] == (str(run.pk), "c", 1)
    assert queued.lock <= timezone.now()


@override_settings(SQUIDMESH={"INLINE_STEPS": 0})
def test_inline__zero_means_one_queue_task_per_step(worker):
    run = squidmesh.start_run("tests.three_steps", {})
    held = OrmQ.objects.get()
    assert worker(held) == "completed"
    assert [s[1] for s in steps_of(run)] == ["a"]
    assert OrmQ.objects.exclude(pk=held.pk).get().task["args"] == (str(run.pk), "b", 1)


@override_settings(SQUIDMESH={"INLINE_STEPS": 10})
def test_inline__each_step_gets_its_own_timeout(worker):
    squidmesh.start_run("tests.inline_short_timeout", {"sleep": 0})
    worker(OrmQ.objects.get())
    # `first` came from the queue (django-q2 armed its timeout); `slow`
    # continued inline and was given its own 2 s.
    assert worker.rearmed == [2]


@override_settings(SQUIDMESH={"INLINE_STEPS": 10})
def test_inline__not_outside_a_django_q2_worker():
    squidmesh.start_run("tests.three_steps", {})
    row = OrmQ.objects.get()
    assert execute_step(*row.task["args"]) == "completed"
    assert Execution.objects.count() == 1


@override_settings(SQUIDMESH={"INLINE_STEPS": 10})
def test_inline__cancel_during_a_step_stops_the_run_there(worker, monkeypatch):
    original = workflows.ThreeSteps.steps["a"].target

    def cancel_midway(data, ctx):
        squidmesh.cancel_run(ctx.run_id)
        return original(data, ctx)

    monkeypatch.setattr(workflows.ThreeSteps.steps["a"], "target", cancel_midway)
    run = squidmesh.start_run("tests.three_steps", {})
    assert worker(OrmQ.objects.get()) == "completed; run cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert [s[1] for s in steps_of(run)] == ["a"]


@override_settings(SQUIDMESH={"INLINE_STEPS": 10})
def test_inline__without_the_held_row_the_next_step_is_dispatched_normally(worker):
    run = squidmesh.start_run("tests.three_steps", {})
    row = OrmQ.objects.get()
    OrmQ.objects.all().delete()  # e.g. its lease ran out and another cluster acked it
    assert worker(row) == "completed"
    assert [s[1] for s in steps_of(run)] == ["a"]
    assert OrmQ.objects.get().task["args"] == (str(run.pk), "b", 1)
    assert WorkflowRun.objects.get(pk=run.pk).current_step == "b"


def test_delivery__only_queued_execute_step_tasks_are_remembered():
    args = ("r", "s", 1)
    delivery._remember_delivery("django_q", execute_step, {"ack_id": 7, "args": args})
    assert delivery.current_delivery("r", "s", "1") == delivery.Delivery(row_id=7, args=args)
    assert delivery.current_delivery("r", "s", 2) is None  # another task's arguments
    delivery._remember_delivery("django_q", print, {"ack_id": 8, "args": args})
    assert delivery.current_delivery(*args) is None
    delivery._remember_delivery("django_q", execute_step, {"args": args, "sync": True})
    assert delivery.current_delivery(*args) is None


def test_rearm_timeout__outside_a_django_q2_worker_does_nothing():
    assert not delivery.worker_timer_available()
    assert delivery.rearm_timeout(5) is False
