"""Section 3: lateness (actual start - due time) of 1 s retry backoffs and 2 s waits."""

from __future__ import annotations

import random
import time

from benchmarks.harness import (
    Row,
    median,
    percentile,
    reset_work_tables,
    running_cluster,
    wait_until,
)

KINDS = {"retry 1 s backoff": "bench.retry_once", "wait 2 s": "bench.wait2"}


def measure(bench) -> None:
    import squidmesh
    from squidmesh.models import StepAttempt, WorkflowRun

    per_kind = bench.delay_samples
    p50s: dict[str, list[float]] = {kind: [] for kind in KINDS}
    p95s: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with running_cluster():
        # Warm-up: workers import the workflows, the relay (Redis) takes office.
        for workflow in KINDS.values():
            squidmesh.start_run(workflow, {})
        wait_until(lambda: not WorkflowRun.objects.active().exists(), timeout=120, interval=0.2)
        for rep in range(bench.reps):
            reset_work_tables()
            runs: dict[str, list[str]] = {kind: [] for kind in KINDS}
            for _ in range(per_kind):
                for kind, workflow in KINDS.items():
                    runs[kind].append(str(squidmesh.start_run(workflow, {}).pk))
                    time.sleep(random.uniform(0, 0.05))  # spread due times over poll phases
            wait_until(lambda: not WorkflowRun.objects.active().exists(), timeout=120, interval=0.2)
            for kind, ids in runs.items():
                delayed = StepAttempt.objects.filter(run_id__in=ids, due_at__isnull=False)
                lateness = [
                    (attempt.started_at - attempt.due_at).total_seconds() * 1000
                    for attempt in delayed.only("started_at", "due_at")
                ]
                if len(lateness) != len(ids):
                    raise RuntimeError(
                        f"{kind}: {len(lateness)} delayed attempts for {len(ids)} runs"
                    )
                p50s[kind].append(percentile(lateness, 0.5))
                p95s[kind].append(percentile(lateness, 0.95))
            print(
                f"    rep {rep + 1}: " + ", ".join(f"{k} p95 {p95s[k][-1]:.0f} ms" for k in KINDS)
            )
    for kind in KINDS:
        note = f"{per_kind} runs x {bench.reps}"
        bench.table.add(
            Row("3 delays", f"{kind}: p50 lateness", median(p50s[kind]), unit="ms", note=note)
        )
        bench.table.add(
            Row(
                "3 delays",
                f"{kind}: p95 lateness",
                median(p95s[kind]),
                unit="ms",
                target="<= 250 ms",
                check=lambda row: row.squidmesh <= 250,
            )
        )
