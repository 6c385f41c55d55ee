"""The outbox relay on real Redis: hand-over, delays, broker outages, crashes, heartbeats."""

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from django_q.conf import Conf
from django_q.signing import SignedPackage

import squidmesh
from squidmesh.lifecycle import AttemptStatus, RunStatus
from squidmesh.models import OutboxMessage, StepAttempt, WorkflowRun
from squidmesh.recovery import recover_runs, recover_silent_attempts
from squidmesh.runtime import heartbeat
from squidmesh.runtime.dispatcher import Dispatch, DjangoQDispatcher
from squidmesh.runtime.executor import StepExecutor, execute_step
from squidmesh.runtime.relay import Relay, outbox_status
from squidmesh.state import presumed_dead
from squidmesh.testing import wait_for
from tests.conftest import ROOT, make_cluster
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

RUN_ID = "6f1d0c0e-8a57-4a8e-9a51-0c1c5bb0c3f2"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def queued_args(broker) -> list[tuple]:
    packages = broker.connection.lrange(broker.list_key, 0, -1)
    return [SignedPackage.loads(package)["args"] for package in packages]


def deliver_all(broker, relay=None) -> list[str]:
    """Relay and execute everything until the outbox and the queue are empty (a 1-worker cluster)."""
    relay = relay or Relay()
    results = []
    while True:
        relay.relay_once()
        package = broker.connection.lpop(broker.list_key)
        if package is None:
            if not OutboxMessage.objects.exists():
                return results
            continue
        results.append(execute_step(*SignedPackage.loads(package)["args"]))


def claim(run, *, beat_ago=0.0):
    """Record attempt 1 of the entry step as `running`, last heard of `beat_ago` seconds ago."""
    attempt = StepExecutor(str(run.pk), "a", 1)._claim().attempt
    StepAttempt.objects.filter(pk=attempt.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=beat_ago)
    )
    return StepAttempt.objects.get(pk=attempt.pk)


def test_relay__hands_over_due_messages_and_deletes_them(redis_broker):
    runs = [squidmesh.start_run("tests.three_steps", {}) for _ in range(3)]
    assert redis_broker.queue_size() == 0

    result = Relay().relay_once()

    assert (result.handed_over, result.error) == (3, None)
    assert OutboxMessage.objects.count() == 0
    assert queued_args(redis_broker) == [(str(run.pk), "a", 1) for run in runs]


def test_relay__hands_over_in_bounded_batches(redis_broker):
    for _ in range(5):
        squidmesh.start_run("tests.three_steps", {})
    relay = Relay(batch=2)

    assert [relay.relay_once().handed_over for _ in range(4)] == [2, 2, 1, 0]
    assert redis_broker.queue_size() == 5


def test_relay__holds_a_delayed_message_until_due_and_sleeps_only_until_then(redis_broker):
    due = timezone.now() + timedelta(seconds=0.4)
    DjangoQDispatcher().dispatch(
        Dispatch(run_id=RUN_ID, workflow="w", step="s", attempt=2, due=due)
    )
    relay = Relay(poll=1.0)

    early = relay.relay_once()
    assert (early.handed_over, early.next_due) == (0, due)
    assert 0 < relay.step() <= 0.4  # not a whole poll: the message is due sooner
    assert redis_broker.queue_size() == 0

    wait_for(lambda: timezone.now() >= due, 2)
    assert relay.relay_once().handed_over == 1
    assert redis_broker.queue_size() == 1


def test_relay__an_idle_pass_costs_one_query(redis_broker, django_assert_num_queries):
    relay = Relay()
    with django_assert_num_queries(1):
        assert relay.relay_once().handed_over == 0


def test_broker_down__start_run_returns_and_the_message_waits_until_the_broker_is_back(
    redis_broker, monkeypatch
):
    working = dict(Conf.REDIS)
    monkeypatch.setattr(Conf, "REDIS", {**working, "port": closed_port()})

    run = squidmesh.start_run("tests.three_steps", {})  # does not raise

    relay = Relay()
    refused = relay.relay_once()
    assert refused.handed_over == 0 and "ConnectionError" in refused.error
    message = OutboxMessage.objects.get()
    assert message.failed_handovers == 1 and "ConnectionError" in message.last_error
    assert relay.step() > relay.poll and relay.failures == 1  # backs off while refused
    assert outbox_status()["last_error"].startswith("ConnectionError")

    monkeypatch.setattr(Conf, "REDIS", working)
    assert relay.relay_once().handed_over == 1
    assert deliver_all(redis_broker, relay)
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED


def test_relay_killed_mid_batch__loses_nothing_and_the_duplicates_are_absorbed(
    redis_broker, monkeypatch
):
    runs = [squidmesh.start_run("tests.three_steps", {}) for _ in range(3)]
    relay = Relay()
    real_broker = relay._broker(None)

    class DiesOnThirdEnqueue:
        list_key = real_broker.list_key
        enqueued = 0

        def enqueue(self, task):
            if self.enqueued == 2:
                raise KeyboardInterrupt("the relay's process is killed")
            self.enqueued += 1
            return real_broker.enqueue(task)

    dying = DiesOnThirdEnqueue()
    monkeypatch.setattr(relay, "_broker", lambda cluster: dying)
    with pytest.raises(KeyboardInterrupt):
        relay.relay_once()

    # Two messages reached Redis, but the transaction that would have deleted
    # them never committed: all three are handed over again.
    assert redis_broker.queue_size() == 2
    assert OutboxMessage.objects.count() == 3
    results = deliver_all(redis_broker)

    assert sum(result.startswith("skipped") for result in results) == 2
    for run in runs:
        assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED
        ran = Execution.objects.filter(run_id=run.pk).values_list("step", flat=True)
        assert sorted(ran) == ["a", "b", "c"]  # each body once


@pytest.mark.cluster
def test_relay_process_sigkilled_mid_batch__loses_nothing(redis_broker):
    runs = [squidmesh.start_run("tests.three_steps", {}) for _ in range(6)]
    # A real `manage.py squidmesh relay` whose broker takes 0.3 s per enqueue.
    unstarted = make_cluster(
        SQUIDMESH_TEST_BROKER="redis", SQUIDMESH_TEST_BROKER_CLASS="tests.testapp.brokers.SlowRedis"
    )
    unstarted.log.close()  # only its environment is used
    env = unstarted.env
    relay = subprocess.Popen(
        [sys.executable, "-m", "django", "squidmesh", "relay"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: redis_broker.queue_size() >= 2, 30)
    finally:
        os.killpg(relay.pid, signal.SIGKILL)
        relay.wait(10)

    enqueued = redis_broker.queue_size()
    assert 2 <= enqueued < 6  # killed mid-batch...
    assert OutboxMessage.objects.count() == 6  # ...so its deletes never committed
    results = deliver_all(redis_broker)

    assert sum(result.startswith("skipped") for result in results) == enqueued
    for run in runs:
        assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED
        assert Execution.objects.filter(run_id=run.pk).count() == 3  # a, b, c once each


def test_outbox_status__reports_the_age_of_the_oldest_due_message(redis_broker):
    assert outbox_status() == {
        "in_use": True,
        "waiting": 0,
        "due": 0,
        "lag": 0.0,
        "last_error": None,
    }
    squidmesh.start_run("tests.three_steps", {})
    OutboxMessage.objects.update(due_at=timezone.now() - timedelta(seconds=3))
    DjangoQDispatcher().dispatch(
        Dispatch(
            run_id=RUN_ID,
            workflow="w",
            step="s",
            attempt=2,
            due=timezone.now() + timedelta(hours=1),
        )
    )

    state = outbox_status()
    assert (state["waiting"], state["due"]) == (2, 1)
    assert 3 <= state["lag"] < 10


def test_command__relay_once_and_status(redis_broker, capsys):
    squidmesh.start_run("tests.three_steps", {})
    call_command("squidmesh", "relay", "--status")
    assert "Outbox: 1 message(s) waiting, 1 due; relay lag" in capsys.readouterr().out

    call_command("squidmesh", "relay", "--once")
    assert capsys.readouterr().out.strip() == "Handed over 1 message(s)."
    assert redis_broker.queue_size() == 1


def test_command__inspect_shows_the_runs_waiting_message_and_the_lag(redis_broker, capsys):
    run = squidmesh.start_run("tests.three_steps", {})
    call_command("squidmesh", "inspect", str(run.pk))
    out = capsys.readouterr().out
    assert "Outbox" in out and "a#1 due" in out and "relay lag" in out


# -- the recovery sweep's backlog stand-down ---------------------------------------


def test_sweep__stands_down_while_due_messages_wait_in_the_outbox(redis_broker):
    run = squidmesh.start_run("tests.three_steps", {})
    old = timezone.now() - timedelta(seconds=600)
    WorkflowRun.objects.filter(pk=run.pk).update(updated_at=old)
    OutboxMessage.objects.update(due_at=old)  # Redis was down for ten minutes

    sweep = recover_runs()

    assert sweep.backlog and sweep.runs == []
    assert OutboxMessage.objects.count() == 1


def test_sweep__stands_down_while_the_oldest_redis_task_waits_for_a_worker(redis_broker):
    run = squidmesh.start_run("tests.three_steps", {})
    Relay().relay_once()
    time.sleep(0.5)
    WorkflowRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    assert recover_runs(older_than=0.2).backlog
    redis_broker.purge_queue()  # the task is lost: the sweep re-sends it
    assert len(recover_runs(older_than=0.2).redispatched) == 1


# -- heartbeats (brokers without a lease) -------------------------------------------


def test_silent_attempt__is_presumed_dead_after_the_heartbeat_timeout(redis_broker):
    run = squidmesh.start_run("tests.three_steps", {})
    assert not presumed_dead(claim(run, beat_ago=1), None)
    StepAttempt.objects.update(heartbeat_at=timezone.now() - timedelta(seconds=16))
    assert presumed_dead(StepAttempt.objects.get(), None)


def test_orm_broker__ignores_heartbeats(transactional_db):
    # The ORM broker's lease redelivers a dead worker's task: no heartbeats.
    run = squidmesh.start_run("tests.three_steps", {})
    assert not heartbeat.enabled()
    assert not presumed_dead(claim(run, beat_ago=3600), None)
    assert recover_silent_attempts() == []


def test_recover_silent_attempts__resends_the_delivery_that_closes_the_attempt(redis_broker):
    live = squidmesh.start_run("tests.three_steps", {})
    dead = squidmesh.start_run("tests.three_steps", {})
    Relay().relay_once()
    redis_broker.purge_queue()  # the dead worker had pulled its task
    claim(live, beat_ago=2)
    claim(dead, beat_ago=20)
    WorkflowRun.objects.update(updated_at=timezone.now() - timedelta(seconds=20))

    [outcome] = recover_silent_attempts()

    assert (outcome.run_id, outcome.attempt, outcome.redispatched) == (str(dead.pk), 1, True)
    deliver_all(redis_broker)
    attempts = StepAttempt.objects.filter(run_id=dead.pk, step_run__step="a").order_by("number")
    assert [a.status for a in attempts] == [AttemptStatus.INTERRUPTED, AttemptStatus.SUCCEEDED]
    assert StepAttempt.objects.get(run_id=live.pk).status == AttemptStatus.RUNNING


@override_settings(SQUIDMESH={"HEARTBEAT_INTERVAL": 0.1})
def test_beating__touches_the_running_attempt_from_a_thread(redis_broker):
    run = squidmesh.start_run("tests.three_steps", {})
    attempt = claim(run, beat_ago=60)

    with heartbeat.beating(attempt.pk):
        wait_for(
            lambda: (
                StepAttempt.objects.get(pk=attempt.pk).heartbeat_at
                > timezone.now() - timedelta(seconds=1)
            ),
            5,
        )
    assert not presumed_dead(StepAttempt.objects.get(pk=attempt.pk), None)


def test_start_run_inside_a_transaction__relays_nothing_before_commit(redis_broker):
    with transaction.atomic():
        squidmesh.start_run("tests.three_steps", {})
        # Another connection (the relay) cannot see the uncommitted message.
        assert outbox_status_from_another_thread()["waiting"] == 0
    assert outbox_status()["waiting"] == 1


def outbox_status_from_another_thread():
    import threading

    from django.db import connection

    result = {}

    def read():
        try:
            result.update(outbox_status())
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return result
