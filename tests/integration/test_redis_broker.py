"""End-to-end behaviour on django-q2's Redis broker, through a real `qcluster` subprocess."""

from datetime import timedelta

import pytest

import squidmesh
from squidmesh.lifecycle import AttemptStatus, RunStatus
from squidmesh.models import StepAttempt
from squidmesh.testing import wait_for_run

pytestmark = pytest.mark.cluster


def attempts(run):
    return list(StepAttempt.objects.filter(run_id=run.pk).order_by("number"))


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
