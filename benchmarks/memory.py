"""Section 6: worker RSS over a long soak (growth with work processed), squidmesh and raw."""

from __future__ import annotations

from benchmarks.harness import (
    Row,
    read_memory,
    reset_work_tables,
    running_cluster,
    wait_until,
)
from benchmarks.workloads import RAW, SQUIDMESH, all_done, start_burst

BATCHES = 10
# django-q2 recycles a worker after `recycle` tasks (default 500), which would
# hide a leak: the soak turns recycling off and says so in the table.
# INFO logging: worker pids are read from "ready for work at <pid>".
SOAK_CLUSTER = {"recycle": 10**9, "max_rss": None, "log_level": "INFO"}


def soak(side: str, total: int) -> dict[str, float]:
    batch = max(total // BATCHES, 1)
    samples: list[float] = []
    with running_cluster(SOAK_CLUSTER) as cluster:
        reset_work_tables()
        for index in range(1, BATCHES + 1):
            start_burst(side, batch)
            done = index * batch
            wait_until(lambda done=done: all_done(side, done), timeout=max(120, batch / 5))
            samples.append(max(read_memory(pid)["VmRSS"] for pid in cluster.worker_pids()))
        peak = max(read_memory(pid)["VmHWM"] for pid in cluster.worker_pids())
    reset_work_tables()
    return {"first": samples[0], "last": samples[-1], "peak": peak}


def measure(bench) -> None:
    total = bench.soak_runs
    result = {side: soak(side, total) for side in (SQUIDMESH, RAW)}
    note = f"{total:,} runs/chains in {BATCHES} batches, recycle off"
    bench.table.add(
        Row(
            "6 worker memory",
            "peak RSS (VmHWM) of a worker",
            result[SQUIDMESH]["peak"],
            result[RAW]["peak"],
            unit="MiB",
            note=note,
        )
    )
    bench.table.add(
        Row(
            "6 worker memory",
            "RSS growth, first → last batch",
            result[SQUIDMESH]["last"] - result[SQUIDMESH]["first"],
            result[RAW]["last"] - result[RAW]["first"],
            unit="MiB",
            target="no growth (<= 5 MiB)",
            check=lambda row: row.squidmesh <= 5,
        )
    )
