import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

import squidmesh
from squidmesh import signals
from squidmesh.exceptions import DeliveryDeferred
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.runtime.executor import execute_step
from squidmesh.testing import drain
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db


def attempts_of(run, step):
    return list(
        StepAttempt.objects.filter(run_id=run.pk, step_run__step=step)
        .order_by("number")
        .values_list("number", "status")
    )


@pytest.fixture
def received():
    """Collect signals sent during the test as (name, kwargs)."""
    seen = []
    names = [n for n in signals.__all__ if n != "send_after_commit"]
    receivers = {}
    for name in names:

        def receiver(sender, _name=name, **kwargs):
            seen.append((_name, kwargs))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield seen
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def test_multi_step_run__merges_every_output_into_the_context():
    run = squidmesh.start_run("tests.three_steps", {"label": "L"})
    assert drain() == 3
    run.refresh_from_db()
    assert run.status == "completed"
    assert run.context == {"a": 1, "seen": ["L"], "b": 2, "c": 3}
    assert run.current_step is None and run.finished_at is not None
    outputs = {s.step: s.output for s in StepRun.objects.filter(run=run)}
    assert outputs == {"a": {"a": 1, "seen": ["L"]}, "b": {"b": 2}, "c": {"c": 3}}


def test_retryable_failure__schedules_next_attempt_with_backoff_due_time():
    run = squidmesh.start_run("tests.flaky", {"fail_times": 2})
    before = timezone.now()
    drain()
    run.refresh_from_db()
    assert run.status == "retrying"
    assert run.last_error["message"] == "flaky failure 1"
    queued = OrmQ.objects.get()
    assert queued.task["args"] == (str(run.pk), "flaky", 2)
    # backoff_min=1 s for the first retry: the queue row is locked until then.
    assert queued.lock >= before + timedelta(seconds=1)
    assert run.scheduled_for == queued.lock
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "completed"
    assert attempts_of(run, "flaky") == [(1, "failed"), (2, "failed"), (3, "succeeded")]


@pytest.mark.parametrize(
    ("retry_after", "max_retry_after", "waits"),
    [
        (30, 3600, 30),  # longer than the 1 s backoff: the failure's wait wins
        (0.5, 3600, 1),  # shorter: the policy's backoff applies
        (30, 5, 5),  # capped by SQUIDMESH["MAX_RETRY_AFTER"]
    ],
)
def test_retry_after__next_attempt_waits_at_least_that_long(
    settings, retry_after, max_retry_after, waits
):
    settings.SQUIDMESH = {**settings.SQUIDMESH, "MAX_RETRY_AFTER": max_retry_after}
    run = squidmesh.start_run("tests.flaky", {"fail_times": 1, "retry_after": retry_after})
    drain()
    [failed] = StepAttempt.objects.filter(run_id=run.pk)
    queued = OrmQ.objects.get()
    delay = (queued.lock - failed.finished_at).total_seconds()
    assert waits <= delay < waits + 1
    assert failed.error["retry_after"] == retry_after


def test_retries_exhausted__run_fails_with_the_last_error():
    run = squidmesh.start_run("tests.flaky", {"fail_times": 5, "raise_plain": True})
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.last_error["type"] == "RuntimeError"
    assert "boom on attempt 3" in run.last_error["message"]
    assert "Traceback" in run.last_error["traceback"]
    assert attempts_of(run, "flaky") == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert StepRun.objects.get(run=run).status == "failed"


def test_terminal_failure__skips_remaining_attempts():
    run = squidmesh.start_run("tests.flaky", {"fail_times": 5, "terminal": True})
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "failed"
    assert attempts_of(run, "flaky") == [(1, "failed")]
    assert run.last_error == {
        "type": "TerminalFailure",
        "message": "gave up",
        "details": {"attempt": 1},
        "retryable": False,
    }


def test_error_transition__taken_once_retries_are_exhausted():
    run = squidmesh.start_run("tests.flaky_with_fallback", {"fail_times": 9})
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "completed"
    assert [s.step for s in StepRun.objects.filter(run=run).order_by("position")] == [
        "flaky",
        "recover",
        "done",
    ]
    assert attempts_of(run, "flaky") == [(1, "failed"), (2, "failed")]
    assert run.context == {"recovered": True}
    done = StepRun.objects.get(run=run, step="done")
    assert done.note == {"message": "finished for 9", "level": "info"}


def test_success_path__does_not_take_the_error_transition():
    run = squidmesh.start_run("tests.flaky_with_fallback", {"fail_times": 1})
    drain(include_delayed=True)
    steps = list(
        StepRun.objects.filter(run=run).order_by("position").values_list("step", flat=True)
    )
    assert steps == ["flaky", "done"]


def test_duplicate_delivery__after_completion_is_a_skip_with_a_reason(received):
    run = squidmesh.start_run("tests.three_steps", {})
    drain()
    result = execute_step(str(run.pk), "a", 1)
    assert result.startswith("skipped: ")
    assert Execution.objects.filter(run_id=run.pk, step="a").count() == 1
    skips = [kw["reason"] for name, kw in received if name == "step_skipped"]
    assert skips and "run is completed" in skips[-1]


def test_stale_delivery__for_a_step_the_run_moved_past_changes_nothing():
    run = squidmesh.start_run("tests.three_steps", {})
    execute_step(str(run.pk), "a", 1)
    before = WorkflowRun.objects.get(pk=run.pk)
    assert execute_step(str(run.pk), "a", 1) == ("skipped: stale delivery: the run is at step 'b'")
    assert execute_step(str(run.pk), "b", 2) == "skipped: stale delivery: attempt 2, expected 1"
    after = WorkflowRun.objects.get(pk=run.pk)
    assert (after.status, after.current_step, after.updated_at) == (
        before.status,
        before.current_step,
        before.updated_at,
    )
    assert Execution.objects.filter(run_id=run.pk).count() == 1


def test_delivery_for_unknown_run__is_skipped():
    assert execute_step("00000000-0000-0000-0000-000000000000", "a", 1) == (
        "skipped: run not found"
    )
    assert execute_step("garbage", "a", 1) == "skipped: run not found"


def test_delivery_while_attempt_runs_elsewhere__is_deferred_not_acknowledged():
    run = squidmesh.start_run("tests.three_steps", {})
    run_obj = WorkflowRun.objects.get(pk=run.pk)
    step_run = StepRun.objects.create(run=run_obj, step="a", position=1, status="running")
    StepAttempt.objects.create(step_run=step_run, run=run_obj, number=1, status="running")
    WorkflowRun.objects.filter(pk=run.pk).update(status="running")
    with pytest.raises(DeliveryDeferred, match="still running"):
        execute_step(str(run.pk), "a", 1)
    assert Execution.objects.count() == 0


def test_attempt_left_running_by_a_dead_worker__is_closed_as_interrupted_and_retried():
    run = squidmesh.start_run("tests.slow", {"sleep": 0})
    run_obj = WorkflowRun.objects.get(pk=run.pk)
    long_ago = timezone.now() - timedelta(minutes=5)
    step_run = StepRun.objects.create(
        run=run_obj, step="slow", position=1, status="running", attempt_count=1
    )
    StepAttempt.objects.create(
        step_run=step_run, run=run_obj, number=1, status="running", started_at=long_ago
    )
    WorkflowRun.objects.filter(pk=run.pk).update(status="running")
    # The redelivered task of attempt 1 finds it running long past its timeout.
    assert execute_step(str(run.pk), "slow", 1) == "closed an interrupted attempt"
    interrupted = StepAttempt.objects.get(run_id=run.pk, number=1)
    assert interrupted.status == "interrupted"
    assert interrupted.error["type"] == "Interrupted"
    run_obj.refresh_from_db()
    assert run_obj.status == "retrying"
    drain(include_delayed=True)
    run_obj.refresh_from_db()
    assert run_obj.status == "completed"
    assert attempts_of(run, "slow") == [(1, "interrupted"), (2, "succeeded")]


def test_cancelling_run__next_delivery_converges_to_cancelled_without_running_the_step():
    run = squidmesh.start_run("tests.three_steps", {})
    execute_step(str(run.pk), "a", 1)
    WorkflowRun.objects.filter(pk=run.pk).update(status="cancelling")
    queued = OrmQ.objects.count()
    assert execute_step(str(run.pk), "b", 1) == "skipped: run was cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert OrmQ.objects.count() == queued  # nothing more dispatched
    assert list(Execution.objects.values_list("step", flat=True)) == ["a"]


def test_step_finishing_on_a_cancelling_run__is_recorded_but_the_run_does_not_advance(
    monkeypatch,
):
    run = squidmesh.start_run("tests.three_steps", {})
    from tests.testapp import workflows

    original = workflows.ThreeSteps.steps["a"].target

    def cancel_midway(data, ctx):
        squidmesh.cancel_run(ctx.run_id)  # an operator cancels while the step runs
        return original(data, ctx)

    monkeypatch.setattr(workflows.ThreeSteps.steps["a"], "target", cancel_midway)
    queued = OrmQ.objects.count()
    assert execute_step(str(run.pk), "a", 1) == "completed; run cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.context == {"a": 1, "seen": ["x"]}
    assert StepRun.objects.get(run=run, step="a").status == "completed"
    assert OrmQ.objects.count() == queued  # step b was not dispatched
    assert not StepRun.objects.filter(run=run, step="b").exists()


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ([1, 2], "step returned list, expected a mapping or None"),
        ({"when": object()}, "not JSON-serializable"),
        # PostgreSQL's jsonb refuses these; the finish must not fail on insert.
        ({"text": "a\x00b"}, "must not contain NUL characters"),
        ({"ratio": float("nan")}, "must contain only finite numbers"),
    ],
)
def test_invalid_step_output__is_a_terminal_failure(monkeypatch, output, message):
    from tests.testapp import workflows

    monkeypatch.setattr(workflows.ThreeSteps.steps["a"], "target", lambda data, ctx: output)
    run = squidmesh.start_run("tests.three_steps", {})
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.last_error["type"] == "InvalidStepOutput"
    assert message in run.last_error["message"]


def test_signals__carry_the_seed_metadata(received, django_capture_on_commit_callbacks):
    # Signals are sent on commit; the test transaction never commits.
    with django_capture_on_commit_callbacks(execute=True):
        run = squidmesh.start_run("tests.flaky", {"fail_times": 1})
        drain(include_delayed=True)
    names = [name for name, _ in received]
    assert names[:2] == ["run_created", "run_dispatched"]
    for expected in ["step_started", "step_failed", "step_retry_scheduled", "step_completed"]:
        assert expected in names
    by_name = {}
    for name, kwargs in received:
        by_name.setdefault(name, kwargs)
    common = {"run_id": str(run.pk), "workflow": "tests.flaky", "trigger": "manual"}
    for name in ["run_created", "run_dispatched", "run_transition", "step_started"]:
        assert common.items() <= by_name[name].items(), name
    assert by_name["step_failed"]["attempt"] == 1
    assert by_name["step_failed"]["error"]["message"] == "flaky failure 1"
    assert by_name["step_failed"]["duration"] >= 0
    assert by_name["step_retry_scheduled"]["delay"] == 1.0
    assert by_name["run_dispatched"]["schedule_in"] == 0.0
    transitions = [
        (kw["from_status"], kw["to_status"]) for n, kw in received if n == "run_transition"
    ]
    assert transitions == [
        ("pending", "running"),
        ("running", "retrying"),
        ("retrying", "running"),
        ("running", "completed"),
    ]


def test_log_records_during_a_step__carry_run_metadata(caplog):
    run = squidmesh.start_run("tests.flaky_with_fallback", {"fail_times": 0})
    with caplog.at_level(logging.INFO, logger="squidmesh"):
        drain(include_delayed=True)
    records = [r for r in caplog.records if r.getMessage() == "finished for 0"]
    assert len(records) == 1
    record = records[0]
    assert (record.run_id, record.workflow, record.step, record.attempt) == (
        str(run.pk),
        "tests.flaky_with_fallback",
        "done",
        1,
    )


def test_wait_step__is_dispatched_with_a_due_time_and_holds_no_attempt_meanwhile():
    run = squidmesh.start_run("tests.waiting", {})
    drain()
    queued = OrmQ.objects.get()
    assert queued.task["args"][1] == "pause"
    assert queued.lock > timezone.now() + timedelta(seconds=1)
    assert not StepAttempt.objects.filter(run_id=run.pk, status="running").exists()
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "completed" and run.context["woke"] is True


def test_step_context__idempotency_key_is_the_same_on_every_attempt(monkeypatch):
    from tests.testapp import workflows

    keys = []

    def record_key(data, ctx):
        keys.append((ctx.attempt, ctx.idempotency_key))
        if ctx.attempt == 1:
            raise squidmesh.StepFailure("first attempt fails")
        return {}

    monkeypatch.setattr(workflows.Flaky.steps["flaky"], "target", record_key)
    run = squidmesh.start_run("tests.flaky", {})
    drain(include_delayed=True)
    assert keys == [(1, f"{run.pk}:flaky"), (2, f"{run.pk}:flaky")]


def leave_attempt_running(run, step, attempt, *, minutes_ago=5):
    """Claim an attempt for real, as a worker that then died would have left it."""
    from squidmesh.runtime.executor import StepExecutor

    claim = StepExecutor(str(run.pk), step, attempt)._claim()
    StepAttempt.objects.filter(pk=claim.attempt.pk).update(
        started_at=timezone.now() - timedelta(minutes=minutes_ago)
    )


def test_interrupted_attempt__of_a_step_without_retries_is_run_again_at_once():
    # A deploy that SIGKILLs workers must not fail runs whose steps have the
    # default policy (one attempt): the interruption is not the step's failure.
    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()  # the dead worker had pulled it
    leave_attempt_running(run, "a", 1)
    assert execute_step(str(run.pk), "a", 1) == "closed an interrupted attempt"
    queued = OrmQ.objects.get()
    assert queued.task["args"] == (str(run.pk), "a", 2)
    assert queued.lock <= timezone.now()  # no backoff after an interruption
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert attempts_of(run, "a") == [(1, "interrupted"), (2, "succeeded")]
    assert run.context == {"a": 1, "seen": ["x"], "b": 2, "c": 3}


def test_interrupted_attempts__do_not_spend_the_retry_budget():
    # max_attempts=3: attempts 2 and 3 fail, attempt 4 is the third real try.
    run = squidmesh.start_run("tests.flaky", {"fail_times": 3})
    OrmQ.objects.all().delete()
    leave_attempt_running(run, "flaky", 1)
    execute_step(str(run.pk), "flaky", 1)
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "completed"
    assert attempts_of(run, "flaky") == [
        (1, "interrupted"),
        (2, "failed"),
        (3, "failed"),
        (4, "succeeded"),
    ]


def test_step_interrupted_too_often__fails_as_if_retries_were_exhausted(settings):
    settings.SQUIDMESH = {"MAX_INTERRUPTIONS": 2}
    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()
    for attempt in (1, 2, 3):
        leave_attempt_running(run, "a", attempt)
        execute_step(str(run.pk), "a", attempt)
        OrmQ.objects.all().delete()
    run.refresh_from_db()
    assert run.status == "failed"
    assert attempts_of(run, "a") == [(1, "interrupted"), (2, "interrupted"), (3, "interrupted")]
    assert run.last_error["type"] == "Interrupted"
    assert "3 attempts interrupted" in run.last_error["message"]
    assert StepRun.objects.get(run=run, step="a").status == "failed"


def test_cancelling_run_whose_worker_died__ends_cancelled_with_the_attempt_closed():
    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()  # the dead worker had pulled it
    leave_attempt_running(run, "a", 1)
    assert squidmesh.cancel_run(run.pk).status == "cancelling"  # an attempt is running
    # The dead worker's task comes back after its lease.
    assert execute_step(str(run.pk), "a", 1) == "skipped: run was cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert attempts_of(run, "a") == [(1, "interrupted")]
    assert StepRun.objects.get(run=run, step="a").status == "cancelled"
    assert Execution.objects.count() == 0


def test_cancelling_run_with_a_live_attempt__delivery_defers_to_the_worker_running_it():
    run = squidmesh.start_run("tests.three_steps", {})
    leave_attempt_running(run, "a", 1, minutes_ago=0)  # its worker is alive
    squidmesh.cancel_run(run.pk)
    with pytest.raises(DeliveryDeferred, match="still running"):
        execute_step(str(run.pk), "a", 1)
    run.refresh_from_db()
    assert run.status == "cancelling"
    assert attempts_of(run, "a") == [(1, "running")]
