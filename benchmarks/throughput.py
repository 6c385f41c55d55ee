"""Section 1: steps/s of N 3-step no-op runs vs N raw 3-task chains on the same cluster.

Besides steps/s it reports CPU per step (the cluster's processes plus their
Postgres backends): on a shared, noisy machine that cost is steadier than
wall-clock throughput.
"""

from __future__ import annotations

import time

from benchmarks.harness import (
    Row,
    cpu_since,
    median,
    postgres_cpu,
    ratio_target,
    reset_work_tables,
    running_cluster,
    wait_until,
)
from benchmarks.workloads import RAW, SQUIDMESH, all_done, completed_runs, start_burst


def idle_rate(cluster, seconds: float = 2.0) -> float:
    """Return the CPU seconds per second the idle cluster spends polling."""
    cluster_cpu, backends_cpu, started = cluster.cpu_seconds(), postgres_cpu(), time.monotonic()
    time.sleep(seconds)
    return cpu_since(cluster, cluster_cpu, backends_cpu) / (time.monotonic() - started)


def burst(cluster, side: str, runs: int, idle: float = 0.0) -> tuple[float, float]:
    """Return (steps/s, CPU ms per step) for `runs` units made visible at once.

    The CPU excludes what the cluster would have spent polling anyway
    (`idle` CPU seconds per second), so a slower burst is not charged more.
    """
    reset_work_tables()
    cluster_cpu, backends_cpu = cluster.cpu_seconds(), postgres_cpu()
    committed = start_burst(side, runs)
    done = wait_until(lambda: all_done(side, runs), timeout=max(120, runs / 5), interval=0.05)
    cpu = cpu_since(cluster, cluster_cpu, backends_cpu) - idle * (done - committed)
    if side == SQUIDMESH and completed_runs() != runs:
        raise RuntimeError(f"only {completed_runs()} of {runs} runs completed")
    return 3 * runs / (done - committed), cpu * 1000 / (3 * runs)


def measure(bench) -> None:
    runs, reps = bench.runs, bench.reps
    rates: dict[str, list[float]] = {SQUIDMESH: [], RAW: []}
    costs: dict[str, list[float]] = {SQUIDMESH: [], RAW: []}
    with running_cluster() as cluster:
        for side in (RAW, SQUIDMESH):
            burst(cluster, side, min(100, runs))  # warm-up: imports, connections
        idle = idle_rate(cluster)
        for rep in range(reps):
            # Alternate who goes first so drift in machine load hits both.
            for side in (SQUIDMESH, RAW) if rep % 2 else (RAW, SQUIDMESH):
                rate, cost = burst(cluster, side, runs, idle)
                rates[side].append(rate)
                costs[side].append(cost)
                print(
                    f"    rep {rep + 1} {side}: {rate:.0f} steps/s, {cost:.2f} ms CPU/step",
                    flush=True,
                )
    bench.table.add(
        Row(
            "1 throughput",
            f"{runs:,} x 3 steps",
            median(rates[SQUIDMESH]),
            median(rates[RAW]),
            unit="steps/s",
            better="higher",
            **ratio_target(">= 0.8x", lambda row: row.ratio >= 0.8),
        )
    )
    bench.table.add(
        Row(
            "1 throughput",
            "CPU per step (cluster + its Postgres backends, idle polling excluded)",
            median(costs[SQUIDMESH]),
            median(costs[RAW]),
            unit="ms",
        )
    )
