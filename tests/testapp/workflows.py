"""Workflows used by the test suite; their step bodies record `Execution` rows."""

import os
import time

import squidmesh
from squidmesh import Retry, Step, StepFailure, TerminalFailure, fields
from squidmesh.tools import HTTP, ToolError, invoke
from tests.testapp.models import Execution


def record(ctx):
    Execution.objects.create(run_id=ctx.run_id, step=ctx.step, attempt=ctx.attempt, pid=os.getpid())


def step_a(data, ctx):
    record(ctx)
    return {"a": 1, "seen": [data["label"]]}


def step_b(data, ctx):
    record(ctx)
    return {"b": data["a"] + 1}


def step_c(data, ctx):
    record(ctx)
    return {"c": data["b"] + 1}


@squidmesh.register
class ThreeSteps(squidmesh.Workflow):
    name = "tests.three_steps"
    triggers = [squidmesh.manual(payload={"label": fields.String(default="x")})]

    a = Step(step_a, on_ok="b")
    b = Step(step_b, on_ok="c")
    c = Step(step_c)


def flaky(data, ctx):
    record(ctx)
    if data.get("sleep"):
        time.sleep(data["sleep"])
    if ctx.attempt <= data["fail_times"]:
        if data["terminal"]:
            raise TerminalFailure("gave up", details={"attempt": ctx.attempt})
        if data["raise_plain"]:
            raise RuntimeError(f"boom on attempt {ctx.attempt}")
        raise StepFailure(
            f"flaky failure {ctx.attempt}",
            details={"attempt": ctx.attempt},
            retry_after=data["retry_after"] or None,
        )
    return {"flaky_ok_on": ctx.attempt}


def recover(data, ctx):
    record(ctx)
    return {"recovered": True}


FLAKY_PAYLOAD = {
    "fail_times": fields.Integer(default=0),
    "terminal": fields.Boolean(default=False),
    "raise_plain": fields.Boolean(default=False),
    "sleep": fields.Float(default=0),
    "retry_after": fields.Float(default=0),
}


@squidmesh.register
class Flaky(squidmesh.Workflow):
    name = "tests.flaky"
    triggers = [squidmesh.manual(payload=FLAKY_PAYLOAD)]

    flaky = Step(flaky, retry=Retry(max_attempts=3, backoff_min=1, backoff_max=4), timeout=4)


@squidmesh.register
class FlakyWithFallback(squidmesh.Workflow):
    name = "tests.flaky_with_fallback"
    triggers = [squidmesh.manual(payload=FLAKY_PAYLOAD)]

    flaky = Step(
        flaky, retry=Retry(max_attempts=2, backoff_min=0.5), on_ok="done", on_error="recover"
    )
    recover = Step(recover, on_ok="done")
    done = squidmesh.log("finished for {fail_times}")


def after_wait(data, ctx):
    record(ctx)
    return {"woke": True}


@squidmesh.register
class Waiting(squidmesh.Workflow):
    name = "tests.waiting"
    triggers = [squidmesh.manual(payload={"label": fields.String(default="w")})]

    before = Step(step_a, on_ok="pause")
    pause = squidmesh.wait(2, on_ok="after")
    after = Step(after_wait)


def slow(data, ctx):
    record(ctx)
    time.sleep(data["sleep"] if ctx.attempt == 1 else 0)
    return {"slow_done_on": ctx.attempt}


@squidmesh.register
class Slow(squidmesh.Workflow):
    name = "tests.slow"
    triggers = [squidmesh.manual(payload={"sleep": fields.Float(default=3.0)})]

    slow = Step(slow, retry=Retry(max_attempts=2, backoff_min=0.2), timeout=6, on_ok="after")
    after = Step(after_wait)


def call_http(data, ctx):
    record(ctx)
    try:
        result = invoke(
            HTTP,
            {
                "method": "POST",
                "url": data["url"],
                "json": {"label": data["label"]},
                "timeout": data["timeout"],
                "idempotency_key": True,
            },
            ctx,
        )
    except ToolError as error:
        raise error.as_step_failure() from error
    return {"http_status": result.payload["status"], "http_body": result.payload["body"]}


@squidmesh.register
class HTTPCall(squidmesh.Workflow):
    """Call an HTTP endpoint through the tool adapter; tool errors become step failures."""

    name = "tests.http_call"
    triggers = [
        squidmesh.manual(
            payload={
                "url": fields.String(),
                "label": fields.String(default="x"),
                "timeout": fields.Float(default=5.0),
            }
        )
    ]

    call = Step(call_http, retry=Retry(max_attempts=3, backoff_min=0.2), timeout=8)


def quick(data, ctx):
    record(ctx)
    return {"quick": True}


def sleep_on_first_attempt(data, ctx):
    record(ctx)
    time.sleep(data["sleep"] if ctx.attempt == 1 else 0)
    return {"slept_on": ctx.attempt}


@squidmesh.register
class InlineShortTimeout(squidmesh.Workflow):
    """A quick step, then one whose own timeout (2 s) is shorter than the task's default."""

    name = "tests.inline_short_timeout"
    triggers = [squidmesh.manual(payload={"sleep": fields.Float(default=4.0)})]

    first = Step(quick, on_ok="slow")
    slow = Step(sleep_on_first_attempt, timeout=2, retry=Retry(max_attempts=2, backoff_min=0.2))


@squidmesh.register
class InlineLongTimeout(squidmesh.Workflow):
    """A quick step with a 1 s timeout, then one allowed 6 s (longer than the first's)."""

    name = "tests.inline_long_timeout"
    triggers = [squidmesh.manual(payload={"sleep": fields.Float(default=5.0)})]

    first = Step(quick, on_ok="slow", timeout=1)
    slow = Step(sleep_on_first_attempt, timeout=6, retry=Retry(max_attempts=2, backoff_min=0.2))


def fail_then_sleep(data, ctx):
    record(ctx)
    if ctx.attempt == 1:
        raise StepFailure("first attempt fails at once")
    time.sleep(data["sleep"])
    return {"slept_on": ctx.attempt}


@squidmesh.register
class DelayedTimeout(squidmesh.Workflow):
    """Attempt 1 fails at once; attempt 2, sent after a backoff, outlives its own 3 s timeout."""

    name = "tests.delayed_timeout"
    triggers = [squidmesh.manual(payload={"sleep": fields.Float(default=6.0)})]

    sleepy = Step(fail_then_sleep, timeout=3, retry=Retry(max_attempts=2, backoff_min=1))
