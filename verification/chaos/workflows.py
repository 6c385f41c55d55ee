"""Workflows whose step bodies write the `BodyRun` ledger, sleep, fail on demand and wait."""

import os
import time

from django.utils import timezone

import squidmesh
from squidmesh import Retry, Step, StepFailure, TerminalFailure, fields
from verification.chaos.models import BodyRun

#: Never succeeds: retries run out, or the step fails terminally at once.
ALWAYS = 1_000_000

WORK_PAYLOAD = {
    "sleep": fields.Float(default=0.0, help_text="Seconds each attempt of `work` takes."),
    "fail_times": fields.Integer(default=0, help_text="Attempts of `work` that fail."),
    "terminal": fields.Boolean(default=False, help_text="Fail terminally instead of retryably."),
}


def ledgered(data, ctx):
    """Record the body run first: if the write fails, the body did nothing."""
    entry = BodyRun.objects.create(
        run_id=ctx.run_id, step=ctx.step, attempt=ctx.attempt, pid=os.getpid()
    )
    BodyRun.objects.filter(pk=entry.pk).update(finished_at=timezone.now(), outcome="ok")
    return {ctx.step: ctx.attempt}


def work(data, ctx):
    entry = BodyRun.objects.create(
        run_id=ctx.run_id, step=ctx.step, attempt=ctx.attempt, pid=os.getpid()
    )
    time.sleep(data["sleep"])
    failing = ctx.attempt <= data["fail_times"]
    outcome = "failed" if failing else "ok"
    BodyRun.objects.filter(pk=entry.pk).update(finished_at=timezone.now(), outcome=outcome)
    if failing and data["terminal"]:
        raise TerminalFailure(f"terminal failure on attempt {ctx.attempt}")
    if failing:
        raise StepFailure(f"failure on attempt {ctx.attempt}")
    return {ctx.step: ctx.attempt}


@squidmesh.register
class Pipeline(squidmesh.Workflow):
    """Prepare, wait, do slow flaky work with generous retries, log, finish."""

    name = "chaos.pipeline"
    triggers = [squidmesh.manual(payload=WORK_PAYLOAD)]

    prepare = Step(ledgered, on_ok="pause")
    pause = squidmesh.wait(1.5, on_ok="work")
    # Attempts to spare: an attempt a killed worker leaves behind is closed
    # as interrupted and counts, so the expected outcome survives several.
    work = Step(
        work, retry=Retry(max_attempts=10, backoff_min=0.5, backoff_max=2), timeout=4, on_ok="note"
    )
    note = squidmesh.log("work done after {fail_times} failure(s)", on_ok="finish")
    finish = Step(ledgered)


@squidmesh.register
class Fallback(squidmesh.Workflow):
    """Work that exhausts its retries, then the error transition compensates."""

    name = "chaos.fallback"
    triggers = [squidmesh.manual(payload=WORK_PAYLOAD)]

    work = Step(
        work,
        retry=Retry(max_attempts=2, backoff_min=0.3),
        timeout=4,
        on_ok="finish",
        on_error="compensate",
    )
    compensate = Step(ledgered, on_ok="finish")
    finish = Step(ledgered)


@squidmesh.register
class Exhausted(squidmesh.Workflow):
    """Work that fails until its retries run out: the run fails."""

    name = "chaos.exhausted"
    triggers = [squidmesh.manual(payload=WORK_PAYLOAD)]

    work = Step(work, retry=Retry(max_attempts=3, backoff_min=0.3, backoff_max=1), timeout=4)
