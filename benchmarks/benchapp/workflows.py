"""squidmesh side of the benchmark: a 3-step no-op workflow, a retry and a wait."""

import squidmesh
from squidmesh import Retry, Step, StepFailure


def noop(data, ctx):
    return None


@squidmesh.register
class NoopThree(squidmesh.Workflow):
    name = "bench.noop3"
    triggers = [squidmesh.manual()]

    first = Step(noop, on_ok="second")
    second = Step(noop, on_ok="third")
    third = Step(noop)


def fail_first_attempt(data, ctx):
    if ctx.attempt == 1:
        raise StepFailure("fails once on purpose")


@squidmesh.register
class RetryOnce(squidmesh.Workflow):
    """Attempt 2 is due 1 s after attempt 1 failed: measures retry lateness."""

    name = "bench.retry_once"
    triggers = [squidmesh.manual()]

    flaky = Step(fail_first_attempt, retry=Retry(max_attempts=2, backoff_min=1))


@squidmesh.register
class WaitTwo(squidmesh.Workflow):
    """A 2 s `wait` between two no-ops: measures wait lateness."""

    name = "bench.wait2"
    triggers = [squidmesh.manual()]

    before = Step(noop, on_ok="pause")
    pause = squidmesh.wait(2, on_ok="after")
    after = Step(noop)
