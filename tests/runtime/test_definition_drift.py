"""Paths where a step's output or the deployed definition no longer fits the run.

`SQUIDMESH['MAX_STEP_OUTPUT_BYTES']` makes an oversized output a terminal
failure; a run whose current step a deploy removed fails with `UnknownStep`.
"""

import logging
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

import squidmesh
from squidmesh import Retry, Step
from squidmesh.exceptions import DeliveryDeferred
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.registry import registry
from squidmesh.runtime.executor import execute_step
from squidmesh.testing import drain

pytestmark = pytest.mark.django_db

NAME = "tests.drift"


def emit(data, ctx):
    return {"blob": "x" * data["size"]}


def fail(data, ctx):
    raise squidmesh.StepFailure("not yet")


def noop(data, ctx):
    return {}


def define(**steps):
    """Register (or, like a deploy, replace) the workflow `tests.drift` with `steps`."""
    if registry.is_registered(NAME):
        registry.unregister(NAME)
    namespace = {
        "name": NAME,
        "triggers": [squidmesh.manual(payload={"size": squidmesh.fields.Integer(default=0)})],
        **steps,
    }
    return registry.register(type("Drift", (squidmesh.Workflow,), namespace))


@pytest.fixture(autouse=True)
def _unregister():
    yield
    if registry.is_registered(NAME):
        registry.unregister(NAME)


# -- MAX_STEP_OUTPUT_BYTES ------------------------------------------------------


def output_bytes(size: int) -> int:
    return len('{"blob": ""}') + size


@override_settings(SQUIDMESH={"MAX_STEP_OUTPUT_BYTES": 100})
def test_output_over_the_limit__is_a_terminal_failure_that_keeps_the_context_small():
    define(emit=Step(emit, retry=Retry(max_attempts=3, backoff_min=0.01)))
    size = 100 - output_bytes(0) + 1  # one byte over
    run = squidmesh.start_run(NAME, {"size": size})

    drain(include_delayed=True)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.context == {}
    attempts = list(StepAttempt.objects.filter(run=run).values_list("number", "status", "error"))
    assert len(attempts) == 1, "an oversized output is not retried"
    error = attempts[0][2]
    assert error["type"] == "InvalidStepOutput"
    assert error["message"] == "step output is 101 bytes, over SQUIDMESH['MAX_STEP_OUTPUT_BYTES']"
    assert run.last_error["type"] == "InvalidStepOutput"


@override_settings(SQUIDMESH={"MAX_STEP_OUTPUT_BYTES": 100})
def test_output_at_the_limit__is_merged():
    define(emit=Step(emit))
    size = 100 - output_bytes(0)
    run = squidmesh.start_run(NAME, {"size": size})

    drain()

    run.refresh_from_db()
    assert run.status == "completed"
    assert run.context == {"blob": "x" * size}


# -- a step removed by a deploy ---------------------------------------------------


def test_removed_current_step__fails_the_run_with_a_clear_error(caplog):
    define(first=Step(noop, on_ok="second"), second=Step(noop))
    run = squidmesh.start_run(NAME, {})
    execute_step(str(run.pk), "first", 1)
    define(first=Step(noop))  # the deploy: "second" is gone, the queued delivery is not

    with caplog.at_level(logging.WARNING, logger="squidmesh"):
        result = execute_step(str(run.pk), "second", 1)

    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at is not None
    assert run.last_error == {
        "type": "UnknownStep",
        "message": "step 'second' no longer exists in workflow 'tests.drift' "
        "(a deploy removed it while the run was at it)",
    }
    assert result.startswith("skipped: step 'second' no longer exists")
    assert any("no longer exists" in r.getMessage() for r in caplog.records)
    assert not StepRun.objects.filter(run=run, step="second").exists()


def test_removed_step_waiting_for_a_retry__its_step_run_fails_too():
    define(flaky=Step(fail, retry=Retry(max_attempts=3, backoff_min=60)))
    run = squidmesh.start_run(NAME, {})
    execute_step(str(run.pk), "flaky", 1)  # fails; attempt 2 is due in a minute
    assert StepRun.objects.get(run=run).status == "retrying"
    define(other=Step(noop))

    execute_step(str(run.pk), "flaky", 2)

    run.refresh_from_db()
    step_run = StepRun.objects.get(run=run)
    assert (run.status, step_run.status) == ("failed", "failed")
    assert step_run.last_error["type"] == "UnknownStep"
    assert step_run.finished_at is not None


def test_removed_step_with_an_attempt_a_dead_worker_left_running__closes_it():
    define(slow=Step(noop, timeout=5))
    run = squidmesh.start_run(NAME, {})
    from squidmesh.runtime.executor import StepExecutor

    StepExecutor(str(run.pk), "slow", 1)._claim()  # a worker took it, then died
    define(other=Step(noop))

    # While the old worker may still be finishing, the delivery waits for it.
    with pytest.raises(DeliveryDeferred):
        execute_step(str(run.pk), "slow", 1)
    StepAttempt.objects.filter(run=run).update(started_at=timezone.now() - timedelta(hours=1))

    execute_step(str(run.pk), "slow", 1)

    attempt = StepAttempt.objects.get(run=run)
    assert attempt.status == "interrupted" and attempt.finished_at is not None
    assert WorkflowRun.objects.get(pk=run.pk).status == "failed"
    assert StepRun.objects.get(run=run).status == "failed"
