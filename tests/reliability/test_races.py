"""Races on one run: two workers and one delivery, cancel against completion, replay against cancel."""

import contextlib
import threading

import pytest
from django.db import connections
from django_q.models import OrmQ
from django_q.signing import SignedPackage

import squidmesh
from squidmesh.exceptions import DeliveryDeferred
from squidmesh.models import StepRun, WorkflowRun
from squidmesh.registry import registry
from squidmesh.runtime.executor import execute_step
from squidmesh.testing import drain, wait_for
from tests.testapp.models import Execution
from verification import invariants


def in_thread(function, *args):
    """Start `function(*args)` in a thread with its own connection; return (thread, outcome)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except Exception as error:
            outcome["value"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


@contextlib.contextmanager
def blocking_step(monkeypatch, workflow: str, step: str):
    """Make `step` signal when its body starts and wait for `release` before running on."""
    started, release = threading.Event(), threading.Event()
    definition = registry.get(workflow).steps[step]
    original = definition.target

    def body(data, ctx):
        started.set()
        assert release.wait(30), "the test never released the step body"
        return original(data, ctx)

    monkeypatch.setattr(definition, "target", body)
    try:
        yield started, release
    finally:
        release.set()


def assert_invariants_hold():
    snapshot = invariants.Snapshot.take(ledger=list(Execution.objects.all()))
    found = [v for violations in invariants.check(snapshot).values() for v in violations]
    assert found == []


def bodies(run, step):
    return Execution.objects.filter(run_id=run.pk, step=step).count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_handed_one_delivery__one_runs_the_body_the_other_defers(monkeypatch):
    for _ in range(3):
        run = squidmesh.start_run("tests.three_steps", {})
        with blocking_step(monkeypatch, "tests.three_steps", "a") as (started, release):
            barrier = threading.Barrier(2)

            def deliver(run_id=str(run.pk), barrier=barrier):
                barrier.wait(10)
                return execute_step(run_id, "a", 1)

            workers = [in_thread(deliver), in_thread(deliver)]
            assert started.wait(10)
            # The loser waited on the run's row lock, then found the attempt
            # running: it defers while the winner's body is still blocked.
            outcomes = [outcome for _, outcome in workers]
            wait_for(lambda outcomes=outcomes: any("value" in o for o in outcomes), 10)
            release.set()
            for thread, _ in workers:
                thread.join(30)
        outcomes = [outcome["value"] for _, outcome in workers]
        assert sorted(map(type, outcomes), key=str) == sorted([str, DeliveryDeferred], key=str), (
            outcomes
        )
        assert "completed" in outcomes
        assert bodies(run, "a") == 1
    assert_invariants_hold()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_delivery_in_two_threads_many_times__the_body_never_runs_twice():
    for _ in range(15):
        run = squidmesh.start_run("tests.three_steps", {})
        barrier = threading.Barrier(2)

        def deliver(run_id=str(run.pk), barrier=barrier):
            barrier.wait(10)
            return execute_step(run_id, "a", 1)

        workers = [in_thread(deliver), in_thread(deliver)]
        for thread, _ in workers:
            thread.join(30)
        outcomes = [outcome["value"] for _, outcome in workers]
        assert outcomes.count("completed") == 1, outcomes
        (other,) = [o for o in outcomes if o != "completed"]
        assert isinstance(other, DeliveryDeferred) or other.startswith("skipped: "), other
        assert bodies(run, "a") == 1
    assert_invariants_hold()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cancel_while_the_step_runs__step_is_recorded_and_the_run_stops(monkeypatch):
    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()  # delivered below by hand
    with blocking_step(monkeypatch, "tests.three_steps", "a") as (started, release):
        worker, outcome = in_thread(execute_step, str(run.pk), "a", 1)
        assert started.wait(10)
        assert squidmesh.cancel_run(run.pk).status == "cancelling"
        release.set()
        worker.join(30)
    assert outcome["value"] == "completed; run cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.context == {"a": 1, "seen": ["x"]}
    assert list(StepRun.objects.filter(run=run).values_list("step", "status")) == [
        ("a", "completed")
    ]
    assert drain(include_delayed=True) == 0  # step b was never dispatched
    assert_invariants_hold()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("workflow", ["tests.three_steps", "tests.flaky"])
def test_cancel_racing_the_step_completion__run_ends_cancelled_or_completed_never_both(
    monkeypatch, workflow
):
    entry = registry.get(workflow).entry_step
    for _ in range(6):
        run = squidmesh.start_run(workflow, {})
        OrmQ.objects.all().delete()
        with blocking_step(monkeypatch, workflow, entry) as (started, release):
            worker, finished = in_thread(execute_step, str(run.pk), entry, 1)
            assert started.wait(10)
            barrier = threading.Barrier(2)

            def cancel(run_id=str(run.pk), barrier=barrier):
                barrier.wait(10)
                return squidmesh.cancel_run(run_id)

            canceller, cancelled = in_thread(cancel)
            barrier.wait(10)
            release.set()  # the finish and the cancel now race for the row lock
            worker.join(30)
            canceller.join(30)
        drain(include_delayed=True)  # whatever was dispatched is delivered
        run.refresh_from_db()
        if isinstance(cancelled["value"], squidmesh.InvalidTransition):
            # The single-step run completed before the cancel took the lock.
            assert run.status == "completed" and workflow == "tests.flaky"
        else:
            assert run.status == "cancelled", (finished["value"], cancelled["value"].status)
            assert bodies(run, entry) == 1
            assert [s.step for s in StepRun.objects.filter(run=run)] == [entry]
    assert_invariants_hold()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_replay_racing_cancel__source_ends_cancelled_and_the_replay_runs_on_its_own():
    for _ in range(6):
        source = squidmesh.start_run("tests.waiting", {"label": "src"})
        drain()  # source sits in its wait
        barrier = threading.Barrier(2)

        def replay(run_id=str(source.pk), barrier=barrier):
            barrier.wait(10)
            return squidmesh.replay_run(run_id)

        def cancel(run_id=str(source.pk), barrier=barrier):
            barrier.wait(10)
            return squidmesh.cancel_run(run_id)

        (replayer, replayed), (canceller, cancelled) = in_thread(replay), in_thread(cancel)
        replayer.join(30)
        canceller.join(30)
        assert cancelled["value"].status == "cancelled"
        new = replayed["value"]
        assert new.replayed_from_id == source.pk
        assert WorkflowRun.objects.get(pk=new.pk).status == "pending"
    drain(include_delayed=True)
    for run in WorkflowRun.objects.all():
        expected = "completed" if run.replayed_from_id else "cancelled"
        assert run.status == expected, run
    assert_invariants_hold()


@pytest.mark.django_db
def test_queue_messages__carry_only_identifiers_never_payload_or_context():
    # Payloads can hold personal data and django-q2 pickles what it queues.
    secrets = {"order_ref": "PII-ALICE-4242", "amount_cents": 987654321, "declines": 1}
    backoffice = {
        **secrets,
        "order_ref": "PII-BOB-1717",
        "operator": "PII-OPERATOR-EVE",
        "tags": ["PII-TAG-SECRET"],
        "metadata": {"email": "PII-alice@example.org"},
    }
    runs = [
        squidmesh.start_run("shop.order_fulfilment", secrets, trigger="checkout"),
        squidmesh.start_run("shop.order_fulfilment", backoffice, trigger="backoffice"),
    ]
    seen = []
    # Walk every dispatch: entry, the wait's delayed continuation, the log,
    # the charge (declined once: a delayed retry), the shipping step.
    for _ in range(30):
        rows = list(OrmQ.objects.order_by("id"))
        if not rows:
            break
        for row in rows:
            task = SignedPackage.loads(row.payload)
            seen.append(task)
            run_ids = {str(run.pk) for run in runs}
            assert task["args"][0] in run_ids
            assert isinstance(task["args"][1], str) and isinstance(task["args"][2], int)
            assert len(task["args"]) == 3 and task["kwargs"] == {}
            contexts = [WorkflowRun.objects.get(pk=pk).context for pk in run_ids]
            values = [*secrets.values(), *backoffice.values(), *contexts]
            for value in _leaves(values):
                if isinstance(value, str) and len(value) > 3:
                    assert value not in repr(task), value
                    assert value not in row.payload
                elif isinstance(value, int) and value > 10_000:
                    assert str(value) not in repr(task), value
        drain(include_delayed=True, max_tasks=1)
    steps = {task["args"][1] for task in seen}
    assert {"reserve_stock", "fraud_screening", "charge_card", "ship"} <= steps
    assert {task["args"][2] for task in seen} >= {1, 2}  # a retry was queued too
    assert all(run.status == "completed" for run in WorkflowRun.objects.all())


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_connection_lost_before_the_finish__is_recorded_once_reconnected(monkeypatch):
    # A database restart or failover between the body and its finish: the
    # worker reconnects and records the outcome, instead of leaving the
    # attempt `running` for the body to run again after the lease.
    from django.db import connection

    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()
    backend = {}
    definition = registry.get("tests.three_steps").steps["a"]
    original = definition.target

    def body(data, ctx):
        output = original(data, ctx)
        backend["pid"] = connection.connection.info.backend_pid
        # Another session kills this worker's connection, as a restart would.
        killer = connections.create_connection("default")
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend["pid"]])
        killer.close()
        return output

    monkeypatch.setattr(definition, "target", body)
    monkeypatch.setattr("squidmesh.runtime.executor.FINISH_RETRY_DELAYS", (0.1, 0.2))

    result = execute_step(str(run.pk), "a", 1)

    assert result == "completed"
    assert connection.connection.info.backend_pid != backend["pid"]  # reconnected
    assert list(
        StepRun.objects.filter(run_id=run.pk).values_list("step", "status", "attempt_count")
    ) == [("a", "completed", 1)]
    assert [a.status for a in StepRun.objects.get(run_id=run.pk, step="a").attempts.all()] == [
        "succeeded"
    ]
    assert bodies(run, "a") == 1
    assert WorkflowRun.objects.get(pk=run.pk).current_step == "b"
    drain()
    assert WorkflowRun.objects.get(pk=run.pk).status == "completed"
    assert_invariants_hold()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_connection_lost_for_good__leaves_the_delivery_unacknowledged(monkeypatch):
    from django.db import OperationalError

    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()
    monkeypatch.setattr("squidmesh.runtime.executor.FINISH_RETRY_DELAYS", (0.05,))
    tries = []

    def unreachable(self, *args):
        tries.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("squidmesh.runtime.executor.StepExecutor._finish", unreachable)

    with pytest.raises(OperationalError):
        execute_step(str(run.pk), "a", 1)
    assert len(tries) == 2  # the first try and one retry
    [attempt] = StepRun.objects.get(run_id=run.pk, step="a").attempts.all()
    assert attempt.status == "running"  # closed as interrupted by the redelivery


@pytest.mark.django_db(transaction=True)
def test_finish_committed_but_its_acknowledgement_lost__retry_stops_at_the_record(monkeypatch):
    from django.db import OperationalError

    from squidmesh.runtime.executor import StepExecutor

    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()
    monkeypatch.setattr("squidmesh.runtime.executor.FINISH_RETRY_DELAYS", (0.05,))
    real_finish, calls = StepExecutor._finish, []

    def finish_then_lose_the_reply(self, *args):
        calls.append(real_finish(self, *args))
        if len(calls) == 1:
            raise OperationalError("connection lost while committing")
        return calls[-1]

    monkeypatch.setattr(StepExecutor, "_finish", finish_then_lose_the_reply)

    result = execute_step(str(run.pk), "a", 1)

    assert calls[0] == "completed"
    assert result == "succeeded; recorded before the connection was lost"
    assert OrmQ.objects.count() == 1  # step b dispatched once, by the first finish
    drain()
    assert WorkflowRun.objects.get(pk=run.pk).status == "completed"
    assert bodies(run, "a") == 1
    assert_invariants_hold()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_connection_lost_under_the_body__is_an_interruption_not_a_failure(monkeypatch):
    # Step `a` has one attempt: a database restart while its body queries
    # must not fail the run. Like a killed worker, it is an interruption.
    from django.db import connection

    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()
    definition = registry.get("tests.three_steps").steps["a"]
    original = definition.target

    def body(data, ctx):
        output = original(data, ctx)
        if ctx.attempt == 1:
            killer = connections.create_connection("default")
            with killer.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid]
                )
            killer.close()
            Execution.objects.count()  # the body's next query finds the connection dead
        return output

    monkeypatch.setattr(definition, "target", body)

    result = execute_step(str(run.pk), "a", 1)

    assert result == "interrupted; retry 2 now"
    drain()
    done = WorkflowRun.objects.get(pk=run.pk)
    assert done.status == "completed"
    step_a = StepRun.objects.get(run_id=run.pk, step="a")
    assert [(a.number, a.status) for a in step_a.attempts.all()] == [
        (1, "interrupted"),
        (2, "succeeded"),
    ]
    assert (
        step_a.attempts.get(number=1)
        .error["message"]
        .startswith("database connection lost during the attempt")
    )
    assert_invariants_hold()


@pytest.mark.django_db(transaction=True)
def test_database_error_with_the_connection_alive__is_the_steps_failure(monkeypatch):
    from django.db import OperationalError

    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()

    def body(data, ctx):
        raise OperationalError("canceling statement due to statement timeout")

    monkeypatch.setattr(registry.get("tests.three_steps").steps["a"], "target", body)

    execute_step(str(run.pk), "a", 1)

    done = WorkflowRun.objects.get(pk=run.pk)
    assert done.status == "failed"
    [attempt] = StepRun.objects.get(run_id=run.pk, step="a").attempts.all()
    assert (attempt.status, attempt.error["type"]) == ("failed", "OperationalError")
