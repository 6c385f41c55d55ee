"""Start one unit of work on either side: a squidmesh run or a raw django-q2 chain."""

from __future__ import annotations

import itertools
import time
import uuid

from django.db import transaction

SQUIDMESH = "squidmesh"
RAW = "raw"
SIDES = (SQUIDMESH, RAW)

_chains = itertools.count()


def new_chain_id() -> str:
    return f"c{next(_chains)}-{uuid.uuid4().hex[:8]}"


def start_one(side: str, record: bool = False) -> str:
    """Start a 3-step run or a 3-task chain; return its id."""
    if side == SQUIDMESH:
        import squidmesh

        return str(squidmesh.start_run("bench.noop3", {}).pk)
    from benchmarks.benchapp.tasks import start_chain

    chain = new_chain_id()
    start_chain(chain, record=record)
    return chain


def start_burst(side: str, count: int) -> float:
    """Start `count` units in one transaction (visible to workers at once); return commit time."""
    from benchmarks.harness import broker_name

    # Redis forgets a task once pulled: a raw chain records its finish so
    # that `all_done` can count it (an INSERT per chain the ORM side skips).
    record = broker_name() == "redis"
    with transaction.atomic():
        for _ in range(count):
            start_one(side, record=record)
    return time.monotonic()


def all_done(side: str, count: int) -> bool:
    """Return whether the `count` units started since the last reset have finished."""
    from benchmarks.harness import broker_name, queue_size

    if broker_name() == "orm":
        # A queue row stays until its task is acknowledged: empty means done.
        return queue_size() == 0
    if side == SQUIDMESH:
        from squidmesh.models import WorkflowRun

        return not WorkflowRun.objects.active().exists() and completed_runs() >= count
    from benchmarks.benchapp.models import ChainFinish

    return ChainFinish.objects.count() >= count


def finished_at(side: str, ident: str) -> float | None:
    """Return the wall-clock time the run/chain finished, or None while it runs."""
    if side == SQUIDMESH:
        from squidmesh.models import WorkflowRun

        row = (
            WorkflowRun.objects.filter(pk=ident, status="completed")
            .values_list("finished_at", flat=True)
            .first()
        )
        return row.timestamp() if row else None
    from benchmarks.benchapp.models import ChainFinish

    return ChainFinish.objects.filter(chain=ident).values_list("finished", flat=True).first()


def completed_runs() -> int:
    from squidmesh.models import WorkflowRun

    return WorkflowRun.objects.filter(status="completed").count()
