"""The verification harness's broker layer: its Redis faults and what it reads from Redis."""

import random
import socket

import pytest
from django_q.tasks import async_task

import squidmesh
from squidmesh.models import OutboxMessage
from squidmesh.runtime.dispatcher import EXECUTE_STEP
from squidmesh.runtime.executor import execute_step
from verification import broker, invariants
from verification.resilience import fault_plan

pytestmark = pytest.mark.django_db


def test_fault_plan__orm_kills_and_restarts_postgres_every_third_round():
    assert fault_plan(5, postgres=True) == ["kill", "postgres", "kill", "kill", "postgres"]
    assert fault_plan(3, postgres=False) == ["kill", "kill", "kill"]


def test_fault_plan__redis_cycles_kill_flush_restart_and_postgres_only_if_allowed():
    assert fault_plan(5, postgres=True, redis=True) == [
        "kill",
        "flush",
        "redis",
        "postgres",
        "kill",
    ]
    assert fault_plan(4, postgres=False, redis=True) == ["kill", "flush", "redis", "kill"]


def test_redis_queue__tasks_are_read_and_flushed(redis_broker):
    assert broker.current() == broker.REDIS
    async_task(EXECUTE_STEP, "3f0c6a52-6f57-4d4e-9a43-0c0a7e1f4f11", "work", 2)
    async_task(EXECUTE_STEP, "3f0c6a52-6f57-4d4e-9a43-0c0a7e1f4f11", "work", 2)

    queued = invariants.queued_step_tasks()
    assert [(t.run_id, t.step, t.attempt) for t in queued] == [
        ("3f0c6a52-6f57-4d4e-9a43-0c0a7e1f4f11", "work", 2)
    ] * 2
    assert broker.flush_queue() == 2
    assert invariants.queued_step_tasks() == []


def test_redis_duplicate__re_sends_the_delivery_of_a_started_attempt(redis_broker):
    assert not broker.inject_duplicate(random.Random(1))  # no attempt yet
    run = squidmesh.start_run("tests.three_steps", {})  # its dispatch waits in the outbox
    execute_step(str(run.pk), "a", 1)  # delivered: attempt 1 of "a" started
    OutboxMessage.objects.all().delete()
    assert broker.inject_duplicate(random.Random(1))
    (task,) = invariants.queued_step_tasks()
    assert (task.run_id, task.attempt) == (str(run.pk), 1) and task.step in {"a", "b", "c"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_redis_server__restart_comes_back_empty_and_a_busy_port_is_refused():
    import redis

    server = broker.RedisServer(free_port())
    server.start()
    try:
        client = redis.Redis(port=server.port)
        client.set("marker", "1")
        server.restart(downtime=0.1)
        assert client.get("marker") is None  # no persistence: the queue is gone
        assert server.restarts == 1
        # Never take over (and later stop) a server someone else runs.
        with pytest.raises(SystemExit, match="--redis-port"):
            broker.RedisServer(server.port).start()
    finally:
        server.stop()
    assert server.process is None
