"""Section 7: maintenance on a big history — pruning against raw SQL deletes, the recovery sweep.

Uses a bulk-generated database (`<name>_m<runs>`, a tenth of the history
section's size; generated once, reused). Each measurement runs inside a
transaction that is rolled back, so every repetition sees the same table:

- prune: `prune_runs()` (batches of 1,000, oldest first) against what one
  would write with the ORM (a cascading `QuerySet.delete()`) and against
  the floor, unbatched `DELETE … WHERE run_id IN (…)` statements;
- recovery sweep with nothing stale, on the big table and on the 10-run one
  (it must not grow with history);
- recovery sweep over the stale runs the generator leaves (1 in 1,000 is
  `running` since 2025): cost per run looked at.

The probe runs in a subprocess on that database: `python -m benchmarks.maintenance probe`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from urllib.parse import urlsplit

from benchmarks.harness import Row, database_url_for, median, probe_in_subprocess
from benchmarks.history import prepare

RAW_PRUNE_SQL = [
    "DELETE FROM squidmesh_stepattempt WHERE run_id IN ({expired})",
    "DELETE FROM squidmesh_steprun WHERE run_id IN ({expired})",
    "UPDATE squidmesh_workflowrun SET replayed_from_id = NULL "
    "WHERE replayed_from_id IN ({expired})",
    "DELETE FROM squidmesh_workflowrun WHERE id IN ({expired})",
]
EXPIRED = (
    "SELECT id FROM squidmesh_workflowrun WHERE status IN ('completed', 'failed', 'cancelled') "
    "AND finished_at < %(cutoff)s"
)


def measure(bench) -> None:
    base = os.environ["DATABASE_URL"]
    name = urlsplit(base).path.lstrip("/")
    runs = max(bench.history_runs // 10, 1_000)
    big, small = database_url_for(base, f"{name}_m{runs}"), database_url_for(base, f"{name}_h10")
    prepare(big, runs)
    prepare(small, 10)
    large_result = probe_database(big, bench.reps)
    small_result = probe_database(small, bench.reps)
    prune = large_result["prune"]
    rate = f"{prune['runs'] / (prune['ms'] / 1000):,.0f} runs/s"
    # Two baselines: what one would write with the ORM (a cascading
    # QuerySet.delete()), and the floor (unbatched raw DELETEs, one transaction).
    bench.table.add(
        Row(
            "7 maintenance",
            f"prune {prune['runs']:,} runs vs QuerySet.delete()",
            prune["ms"],
            large_result["orm_delete"]["ms"],
            unit="ms",
            target="faster than the ORM cascade",
            check=lambda row: row.ratio is not None and row.ratio < 1,
            note=rate,
        )
    )
    bench.table.add(
        Row(
            "7 maintenance",
            f"prune {prune['runs']:,} runs vs raw unbatched DELETEs",
            prune["ms"],
            large_result["raw_delete"]["ms"],
            unit="ms",
            note="batches of 1,000 in their own transactions vs one statement per table",
        )
    )
    idle_big, idle_small = large_result["sweep_idle"], small_result["sweep_idle"]
    bench.table.add(
        Row(
            "7 maintenance",
            "recovery sweep, nothing stale",
            f"{idle_big['ms']:.2f} ms, {idle_big['queries']} q",
            f"{idle_small['ms']:.2f} ms, {idle_small['queries']} q",
            ratio_value=idle_big["ms"] / idle_small["ms"],
            target="same queries, <= 2x",
            check=lambda row: (
                idle_big["queries"] == idle_small["queries"]
                and idle_big["ms"] <= 2 * idle_small["ms"]
            ),
            note=f"{runs:,} vs 10 runs",
        )
    )
    stale = large_result["sweep_stale"]
    bench.table.add(
        Row(
            "7 maintenance",
            f"recovery sweep over {stale['runs']} stale runs (dry run)",
            stale["ms"] / max(stale["runs"], 1),
            None,
            unit="ms/run",
            note=f"{stale['queries'] / max(stale['runs'], 1):.1f} queries/run",
        )
    )


def probe_database(url: str, repeats: int) -> dict:
    return probe_in_subprocess("benchmarks.maintenance", url, repeats)


def in_rollback(call):
    """Run `call()` in a transaction that is rolled back; return (its result, ms, queries)."""
    from django.db import connection, reset_queries, transaction
    from django.test.utils import CaptureQueriesContext

    # The query log is a bounded deque: once full, captured slices come out
    # empty (the ORM cascade alone logs thousands of queries).
    reset_queries()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = call()
        ms = (time.perf_counter() - started) * 1000
        transaction.set_rollback(True)
    return result, ms, len(queries)


def probe(repeats: int) -> dict:
    import django

    django.setup()
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from squidmesh.models import WorkflowRun
    from squidmesh.recovery import recover_runs
    from squidmesh.retention import prune_runs

    month = timedelta(days=30)

    def raw_delete():
        cutoff = timezone.now() - month
        with connection.cursor() as cursor:
            for sql in RAW_PRUNE_SQL:
                cursor.execute(sql.format(expired=EXPIRED), {"cutoff": cutoff})
        return None

    def orm_delete():
        cutoff = timezone.now() - month
        return WorkflowRun.objects.terminal().filter(finished_at__lt=cutoff).delete()

    prune_ms, raw_ms, orm_ms, pruned = [], [], [], 0
    for _ in range(repeats):  # alternate, so every side sees the same cache state
        result, ms, _queries = in_rollback(lambda: prune_runs(month))
        pruned, prune_ms = result.runs, [*prune_ms, ms]
        raw_ms.append(in_rollback(raw_delete)[1])
        orm_ms.append(in_rollback(orm_delete)[1])

    idle = [in_rollback(lambda: recover_runs(older_than=10 * 365 * 86400)) for _ in range(repeats)]
    stale = [in_rollback(lambda: recover_runs(dry_run=True, limit=1000)) for _ in range(repeats)]
    return {
        "prune": {"ms": median(prune_ms), "runs": pruned},
        "raw_delete": {"ms": median(raw_ms)},
        "orm_delete": {"ms": median(orm_ms)},
        "sweep_idle": {"ms": median([ms for _, ms, _ in idle]), "queries": idle[-1][2]},
        "sweep_stale": {
            "ms": median([ms for _, ms, _ in stale]),
            "queries": stale[-1][2],
            "runs": len(stale[-1][0].runs),
        },
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["probe"]:
        print(json.dumps(probe(int(sys.argv[2]))))
