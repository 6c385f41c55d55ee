"""Resilience check: SIGKILL every cluster, restart Postgres, lose or stop Redis, mid-flight."""

from __future__ import annotations

import contextlib
import random
import time

from squidmesh.testing import wait_for
from verification.harness import (
    Clusters,
    Harness,
    Load,
    census,
    converge,
    drain_queue,
    print_table,
    reconnecting,
)

__all__ = ["run"]


def active_runs() -> int:
    from squidmesh.models import WorkflowRun

    return reconnecting(WorkflowRun.objects.active().count)


SITUATIONS = ("queued", "waiting", "retrying", "mid-step")


def fault_plan(rounds: int, postgres: bool, redis: bool = False) -> list[str]:
    """Return the fault of each round.

    On the ORM broker: kill every cluster, except every third round (from
    the second) restarts Postgres. On Redis the rounds cycle through kill,
    flush (the queue is lost), redis (the server stops and comes back
    empty) and, if allowed, postgres.
    """
    if redis:
        cycle = ["kill", "flush", "redis", *(["postgres"] if postgres else [])]
        return [cycle[index % len(cycle)] for index in range(rounds)]
    return ["postgres" if postgres and index % 3 == 2 else "kill" for index in range(1, rounds + 1)]


def run(options) -> int:
    rng = random.Random(options.seed)
    harness = Harness("resilience")
    clusters = Clusters(2)
    load = Load(rng)
    at_fault: list[tuple] = []
    plan = fault_plan(options.rounds, options.postgres_restart, redis=options.broker == "redis")
    try:
        clusters.start()
        for index, fault in enumerate(plan, start=1):
            # Let the previous round's backlog drain first, so that each fault
            # hits a fresh mix rather than an ever longer queue.
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: active_runs() < options.runs // 2, timeout=60, interval=0.5)
            load.start_many(options.runs)
            # Let the batch spread out: some runs mid-step, some in their
            # wait, some between retries, before the fault hits them.
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: all(census()[s] for s in SITUATIONS[1:]), timeout=20, interval=0.2)
            load.start_many(options.burst)  # queued, not yet picked up
            seen = census()
            at_fault.append((index, fault, *(seen[s] for s in SITUATIONS)))
            if fault == "kill":
                clusters.kill_all()
                harness.fault()
                time.sleep(options.downtime)
                clusters.start()
            elif fault == "flush":
                harness.flush_redis()
            elif fault == "redis":
                harness.restart_redis(options.redis_server, options.redis_downtime)
            else:
                harness.restart_postgres()
        converged = converge(options.bound)
        converged_at = time.monotonic() - (harness.last_fault or harness.started)
        leftover = drain_queue(15)
    finally:
        clusters.stop()

    print_table(
        "resilience: runs in flight when each fault hit",
        ["#", "fault", *SITUATIONS],
        at_fault,
    )
    status = harness.verdict(
        load=load,
        clusters=clusters,
        converged=converged,
        converged_at=converged_at,
        leftover=leftover,
    )
    missed = [s for i, s in enumerate(SITUATIONS, start=2) if not any(row[i] for row in at_fault)]
    if missed:
        print(f"resilience: no fault hit a run that was {', '.join(missed)}; scenario too small")
        status = 1
    clusters.report_logs(failed=bool(status), verbose=options.verbose)
    return status
