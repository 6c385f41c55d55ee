"""Runs continued inline by a real `qcluster` worker: timeouts per step, and a worker killed mid-step."""

import os
import signal

import pytest

import squidmesh
from squidmesh.models import StepAttempt
from squidmesh.testing import wait_for, wait_for_run
from tests.testapp.models import Execution

pytestmark = pytest.mark.cluster


def attempts(run, step):
    return list(
        StepAttempt.objects.filter(run_id=run.pk, step_run__step=step)
        .order_by("number")
        .values_list("number", "status")
    )


def test_inline__a_run_continues_in_the_worker_that_ran_its_first_step(cluster):
    run = wait_for_run(squidmesh.start_run("tests.three_steps", {}).pk)
    assert run.status == "completed"
    pids = set(Execution.objects.filter(run_id=run.pk).values_list("pid", flat=True))
    assert len(pids) == 1
    workers = {a.worker for step_run in run.history for a in step_run.attempts.all()}
    assert len(workers) == 1


def test_inline__a_step_is_stopped_at_its_own_shorter_timeout(cluster):
    # The task's timeout is the cluster's 8 s; `slow` continues inline with
    # its own 2 s and sleeps 4 s on attempt 1, so it must time out.
    run = squidmesh.start_run("tests.inline_short_timeout", {"sleep": 4})
    run = wait_for_run(run.pk, timeout=60)
    assert run.status == "completed"
    assert attempts(run, "slow") == [(1, "failed"), (2, "succeeded")]
    failed = StepAttempt.objects.get(run_id=run.pk, step_run__step="slow", number=1)
    assert failed.error["type"] == "Timeout"
    assert "(2 seconds)" in failed.error["message"]


def test_inline__a_step_may_run_longer_than_the_first_steps_timeout(cluster):
    # `first` has a 1 s timeout (django-q2 arms 1 s, its guard 4 s); `slow`
    # is allowed 6 s and sleeps 5 s inline: both timers must be re-armed.
    run = squidmesh.start_run("tests.inline_long_timeout", {"sleep": 5})
    run = wait_for_run(run.pk, timeout=60)
    assert run.status == "completed"
    assert attempts(run, "slow") == [(1, "succeeded")]
    pids = set(Execution.objects.filter(run_id=run.pk).values_list("pid", flat=True))
    assert len(pids) == 1  # ran inline, and the worker was not killed


def test_inline__worker_killed_during_an_inline_step__is_redelivered_and_retried(cluster):
    run = squidmesh.start_run("tests.inline_long_timeout", {"sleep": 60})
    slow = wait_for(lambda: Execution.objects.filter(run_id=run.pk, step="slow").first(), 30)
    first = Execution.objects.get(run_id=run.pk, step="first")
    assert slow.pid == first.pid  # continued inline
    os.kill(slow.pid, signal.SIGKILL)
    # The held queue row now carries `slow`; it comes back after the lease
    # (Q_CLUSTER retry=15 s in tests), finds the attempt interrupted, retries.
    done = wait_for_run(run.pk, timeout=90)
    assert done.status == "completed"
    assert attempts(done, "slow") == [(1, "interrupted"), (2, "succeeded")]
    assert Execution.objects.filter(run_id=run.pk, step="first").count() == 1
