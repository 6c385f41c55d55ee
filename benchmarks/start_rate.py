"""Section 4: `start_run` per second from 1 and 4 client threads vs `async_task` per second."""

from __future__ import annotations

import threading
import time

from django.db import connections

from benchmarks.harness import Row, median, reset_work_tables
from benchmarks.workloads import RAW, SQUIDMESH, start_one


def rate(side: str, threads: int, per_thread: int) -> float:
    reset_work_tables()
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def client():
        try:
            start_one(side)  # connect before the clock starts
            barrier.wait()
            for _ in range(per_thread):
                start_one(side)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)
            barrier.abort()
        finally:
            connections.close_all()

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.monotonic()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    if errors:
        raise errors[0]
    return threads * per_thread / elapsed


def measure(bench) -> None:
    # No cluster runs: this is the cost on the caller's side (the queue fills up).
    for threads in (1, 4):
        results: dict[str, list[float]] = {SQUIDMESH: [], RAW: []}
        for rep in range(bench.reps):
            for side in (SQUIDMESH, RAW) if rep % 2 else (RAW, SQUIDMESH):
                results[side].append(rate(side, threads, bench.starts_per_thread))
        bench.table.add(
            Row(
                "4 start rate",
                f"{threads} client thread{'s' if threads > 1 else ''}",
                median(results[SQUIDMESH]),
                median(results[RAW]),
                unit="/s",
                better="higher",
                note="start_run vs async_task",
            )
        )
    reset_work_tables()
