"""End-to-end behaviour on django-q2's Redis broker, through a real `qcluster` subprocess."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf

import squidmesh
from squidmesh.lifecycle import AttemptStatus, RunStatus
from squidmesh.models import OutboxMessage, StepAttempt
from squidmesh.testing import wait_for, wait_for_run
from tests.testapp.models import Execution

pytestmark = pytest.mark.cluster


def attempts(run):
    return list(StepAttempt.objects.filter(run_id=run.pk).order_by("step_run__position", "number"))


def lateness(attempt) -> float:
    return (attempt.started_at - attempt.due_at).total_seconds()


def test_delayed_attempt__is_cut_at_its_own_step_timeout(redis_broker, new_cluster):
    # The step's timeout is 3 s, the cluster's 8 s; attempt 2 is sent after a
    # 1 s backoff and sleeps 6 s. Under the cluster's timeout it would
    # succeed; under its own it is cut at 3 s and the run fails.
    new_cluster(SQUIDMESH_TEST_BROKER="redis")
    run = squidmesh.start_run("tests.delayed_timeout", {"sleep": 6})

    run = wait_for_run(run.pk, timeout=90)

    first, second = attempts(run)
    assert (first.status, second.status) == (AttemptStatus.FAILED, AttemptStatus.FAILED)
    assert second.error["type"] == "Timeout"
    assert second.duration < timedelta(seconds=5)
    assert run.status == RunStatus.FAILED


def test_retries_and_waits__start_when_due_through_the_relay(redis_broker, new_cluster):
    # Formerly django-q2 ONCE schedules: 16 s late at p50, 28 s at p95.
    new_cluster(SQUIDMESH_TEST_BROKER="redis")
    flaky = squidmesh.start_run("tests.flaky", {"fail_times": 2})
    waiting = squidmesh.start_run("tests.waiting", {})

    flaky, waiting = wait_for_run(flaky.pk, timeout=60), wait_for_run(waiting.pk, timeout=60)

    assert (flaky.status, waiting.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    delayed = [a for a in attempts(flaky) + attempts(waiting) if a.due_at is not None]
    assert len(delayed) == 3  # two retries and the step after the wait
    # The benchmark measures the real figure (python -m benchmarks --broker
    # redis); this bound only has to survive a loaded CI machine.
    assert max(lateness(a) for a in delayed) < 2.0
    assert min(lateness(a) for a in delayed) >= 0.0


@pytest.fixture
def own_redis():
    """A redis-server this test may stop and start again (never the shared one on 6379)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is needed for the Redis outage test")
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="squidmesh-redis-")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    command += ["--appendonly", "no"]
    server = {"process": None}

    def start():
        server["process"] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: _accepts(port), 10)

    def stop():
        server["process"].send_signal(signal.SIGTERM)
        server["process"].wait(10)

    start()
    yield type("OwnRedis", (), {"port": port, "start": staticmethod(start), "stop": stop})
    if server["process"].poll() is None:
        stop()
    shutil.rmtree(workdir, ignore_errors=True)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def test_start_run_during_a_redis_outage__returns_and_the_run_starts_once_redis_is_back(
    redis_broker, new_cluster, own_redis, monkeypatch
):
    monkeypatch.setattr(Conf, "REDIS", {**Conf.REDIS, "port": own_redis.port})
    new_cluster(SQUIDMESH_TEST_BROKER="redis", SQUIDMESH_TEST_REDIS_PORT=str(own_redis.port))
    own_redis.stop()

    runs = [squidmesh.start_run("tests.three_steps", {}) for _ in range(3)]  # no error

    # The cluster's relay keeps the messages and records why.
    wait_for(lambda: OutboxMessage.objects.filter(failed_handovers__gt=0).exists(), 30)
    assert OutboxMessage.objects.count() == 3
    assert {squidmesh.inspect_run(run.pk).status for run in runs} == {RunStatus.PENDING}

    own_redis.start()
    for run in runs:
        assert wait_for_run(run.pk, timeout=60).status == RunStatus.COMPLETED
    assert OutboxMessage.objects.count() == 0
    for run in runs:
        ran = Execution.objects.filter(run_id=run.pk).values_list("step", flat=True)
        assert sorted(ran) == ["a", "b", "c"]


def test_killed_worker__its_attempt_is_closed_by_the_heartbeat_check(redis_broker, new_cluster):
    # Heartbeats every 1 s, silent for 3 s = dead: well before the step's
    # timeout (6 s + 2 s grace) would tell, and without any recovery sweep.
    new_cluster(SQUIDMESH_TEST_BROKER="redis", SQUIDMESH_TEST_HEARTBEAT="1,3")
    run = squidmesh.start_run("tests.slow", {"sleep": 60})
    body = wait_for(lambda: Execution.objects.filter(run_id=run.pk).first(), 30)
    wait_for(
        lambda: StepAttempt.objects.filter(run_id=run.pk, heartbeat_at__gt=body.created_at), 10
    )
    killed_at = timezone.now()
    os.kill(body.pid, signal.SIGKILL)

    first = wait_for(
        lambda: StepAttempt.objects.filter(
            run_id=run.pk, number=1, status=AttemptStatus.INTERRUPTED
        ).first(),
        30,
    )
    done = wait_for_run(run.pk, timeout=30)

    assert first.finished_at - killed_at < timedelta(seconds=6)
    assert done.status == RunStatus.COMPLETED
    assert [(a.number, a.status) for a in attempts(done)][:2] == [
        (1, AttemptStatus.INTERRUPTED),
        (2, AttemptStatus.SUCCEEDED),
    ]
