"""Section 2: end-to-end latency of one 3-step run at a time vs a raw 3-task chain; idle CPU."""

from __future__ import annotations

import random
import time

from benchmarks.harness import (
    Row,
    median,
    percentile,
    ratio_target,
    reset_work_tables,
    running_cluster,
)
from benchmarks.workloads import RAW, SQUIDMESH, finished_at, start_one


def one(side: str, poll: float) -> float:
    # A random gap puts the start at a random phase of the pusher's poll sleep.
    time.sleep(random.uniform(0, 2 * poll))
    started = time.time()
    ident = start_one(side, record=True)
    deadline = time.monotonic() + 30
    while (end := finished_at(side, ident)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{side} {ident} did not finish in 30 s")
        time.sleep(0.005)
    return (end - started) * 1000


def measure(bench) -> None:
    from django.conf import settings

    poll = settings.Q_CLUSTER.get("poll", 0.2)
    samples = bench.latency_samples
    p50s: dict[str, list[float]] = {SQUIDMESH: [], RAW: []}
    p95s: dict[str, list[float]] = {SQUIDMESH: [], RAW: []}
    reset_work_tables()
    with running_cluster() as cluster:
        for side in (RAW, SQUIDMESH):
            for _ in range(3):
                one(side, poll)  # warm-up
        for rep in range(bench.reps):
            times: dict[str, list[float]] = {SQUIDMESH: [], RAW: []}
            for _ in range(samples):
                for side in (SQUIDMESH, RAW) if random.random() < 0.5 else (RAW, SQUIDMESH):
                    times[side].append(one(side, poll))
            for side in times:
                p50s[side].append(percentile(times[side], 0.5))
                p95s[side].append(percentile(times[side], 0.95))
            print(
                f"    rep {rep + 1}: p50 squidmesh {p50s[SQUIDMESH][-1]:.1f} ms, "
                f"raw {p50s[RAW][-1]:.1f} ms",
                flush=True,
            )
        # Idle cost of this poll: CPU of the whole cluster while nothing is queued.
        time.sleep(1)
        before, started = cluster.cpu_seconds(), time.monotonic()
        time.sleep(bench.idle_seconds)
        idle_cpu = (cluster.cpu_seconds() - before) / (time.monotonic() - started) * 100
    note = f"poll={poll:g}s, {samples} runs x {bench.reps}"
    bench.table.add(
        Row(
            "2 latency",
            "p50 start→completed",
            median(p50s[SQUIDMESH]),
            median(p50s[RAW]),
            unit="ms",
            **ratio_target("<= 1.5x", lambda row: row.ratio <= 1.5),
            note=note,
        )
    )
    bench.table.add(
        Row(
            "2 latency",
            "p95 start→completed",
            median(p95s[SQUIDMESH]),
            median(p95s[RAW]),
            unit="ms",
        )
    )
    bench.table.add(
        Row(
            "2 latency",
            "idle CPU of the cluster",
            idle_cpu,
            unit="% of a core",
            note=f"poll={poll:g}s, same cluster for both",
        )
    )
