"""Soak check: mixed load on two clusters sharing Postgres, with random SIGKILLs of one."""

from __future__ import annotations

import random
import time

from verification.harness import Clusters, Harness, Load, converge, drain_queue

__all__ = ["run"]

# Per started run: how often the load also cancels, replays, or duplicates a delivery.
CANCEL_RATIO = 0.10
REPLAY_RATIO = 0.05
DUPLICATE_RATIO = 0.25


def run(options) -> int:
    rng = random.Random(options.seed)
    harness = Harness("soak")
    clusters = Clusters(2)
    load = Load(rng)
    try:
        clusters.start()
        began = time.monotonic()
        end = began + options.duration
        next_kill = began + rng.uniform(*options.kill_every)
        restart_at = None
        owed = {"cancel": 0.0, "replay": 0.0, "duplicate": 0.0}
        while time.monotonic() < end:
            now = time.monotonic()
            due_runs = min(options.runs, int(options.rate * (now - began)))
            while load.started < due_runs:
                load.start()
                owed["cancel"] += CANCEL_RATIO
                owed["replay"] += REPLAY_RATIO
                owed["duplicate"] += DUPLICATE_RATIO
            if owed["cancel"] >= 1:
                owed["cancel"] -= 1
                load.cancel_random()
            if owed["replay"] >= 1:
                owed["replay"] -= 1
                load.replay_random()
            if owed["duplicate"] >= 1:
                owed["duplicate"] -= 1
                load.inject_duplicate()
            if restart_at is None and now >= next_kill:
                clusters.kill_one(rng)
                harness.fault()
                restart_at = now + rng.uniform(0.5, 3.0)
            elif restart_at is not None and now >= restart_at:
                clusters.start(1)
                restart_at = None
                next_kill = time.monotonic() + rng.uniform(*options.kill_every)
            time.sleep(0.05)
        if restart_at is not None:
            clusters.start(1)
        harness.note("load duration", f"{options.duration:.0f} s at {options.rate}/s")
        converged = converge(options.bound)
        converged_at = time.monotonic() - (harness.last_fault or harness.started)
        leftover = drain_queue(15)
    finally:
        clusters.stop()
    status = harness.verdict(
        load=load,
        clusters=clusters,
        converged=converged,
        converged_at=converged_at,
        leftover=leftover,
    )
    clusters.report_logs(failed=bool(status), verbose=options.verbose)
    return status
