"""Section 5: list/inspect/admin/REST with 10 runs vs a bulk-generated table of 1,000,000.

Each table size lives in its own database (`<name>_h<runs>`), generated once
with server-side `INSERT … SELECT generate_series` and reused by later
invocations. The probes run in a subprocess pointed at that database:
`python -m benchmarks.history probe`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

from benchmarks.harness import (
    ROOT,
    Row,
    database_url_for,
    ensure_database,
    median,
    probe_in_subprocess,
)

BATCH = 100_000
STEPS = (("first", 1), ("second", 2), ("third", 3))
EPOCH = "2025-01-01 00:00:00+00"

RUNS_SQL = f"""
INSERT INTO squidmesh_workflowrun
  (id, workflow, trigger, status, payload, context, current_step, last_error,
   idempotency_key, scheduled_for, created_at, updated_at, started_at, finished_at)
SELECT gen_random_uuid(),
       (ARRAY['bench.noop3','bench.noop3','bench.retry_once','bench.wait2','bench.legacy'])[1 + g %% 5],
       'manual',
       CASE WHEN g %% 100 = 0 THEN 'failed' WHEN g %% 1000 = 1 THEN 'running' ELSE 'completed' END,
       jsonb_build_object('order', g),
       '{{"first": 1, "second": 2, "third": 3}}'::jsonb,
       CASE WHEN g %% 1000 = 1 THEN 'third' END,
       CASE WHEN g %% 100 = 0 THEN '{{"type": "StepFailure", "message": "generated"}}'::jsonb END,
       NULL, NULL,
       TIMESTAMPTZ '{EPOCH}' + g * INTERVAL '10 seconds',
       TIMESTAMPTZ '{EPOCH}' + g * INTERVAL '10 seconds' + INTERVAL '2 seconds',
       TIMESTAMPTZ '{EPOCH}' + g * INTERVAL '10 seconds',
       CASE WHEN g %% 1000 <> 1 THEN TIMESTAMPTZ '{EPOCH}' + g * INTERVAL '10 seconds' + INTERVAL '2 seconds' END
FROM generate_series(%(low)s::integer, %(high)s::integer) AS g
"""

STEP_RUNS_SQL = f"""
INSERT INTO squidmesh_steprun
  (id, run_id, step, position, status, output, note, attempt_count, last_error, created_at, finished_at)
SELECT gen_random_uuid(), r.id, s.name, s.position, 'completed',
       jsonb_build_object(s.name, s.position), NULL, 1, NULL,
       r.created_at + s.position * INTERVAL '0.5 seconds',
       r.created_at + s.position * INTERVAL '0.5 seconds' + INTERVAL '0.1 seconds'
FROM squidmesh_workflowrun r
CROSS JOIN (VALUES {", ".join(f"('{n}', {p})" for n, p in STEPS)}) AS s(name, position)
WHERE r.created_at >= TIMESTAMPTZ '{EPOCH}' + %(low)s * INTERVAL '10 seconds'
  AND r.created_at <= TIMESTAMPTZ '{EPOCH}' + %(high)s * INTERVAL '10 seconds'
"""

ATTEMPTS_SQL = f"""
INSERT INTO squidmesh_stepattempt
  (id, step_run_id, run_id, number, status, error, due_at, started_at, finished_at, worker)
SELECT gen_random_uuid(), sr.id, sr.run_id, 1, 'succeeded', NULL, NULL,
       sr.created_at, sr.finished_at, 'bench:1'
FROM squidmesh_steprun sr
JOIN squidmesh_workflowrun r ON r.id = sr.run_id
WHERE r.created_at >= TIMESTAMPTZ '{EPOCH}' + %(low)s * INTERVAL '10 seconds'
  AND r.created_at <= TIMESTAMPTZ '{EPOCH}' + %(high)s * INTERVAL '10 seconds'
"""


def prepare(url: str, runs: int) -> None:
    """Migrate the database at `url` and fill it up to `runs` generated runs (reused if there)."""
    import psycopg

    ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "benchmarks.settings"}
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        env=env,
        cwd=ROOT,
        check=True,
    )
    for _ in range(20):
        try:
            with psycopg.connect(url, autocommit=True) as connection:
                generate(connection, url, runs)
            return
        except psycopg.OperationalError as error:
            # Each batch commits on its own: after a lost connection (a
            # restarted server on a shared machine) carry on where it stopped.
            print(f"      connection lost ({error}); resuming", flush=True)
            time.sleep(3)
    raise RuntimeError(f"could not generate the history in {url}")


def generate(connection, url: str, runs: int) -> None:
    have = connection.execute("SELECT count(*) FROM squidmesh_workflowrun").fetchone()[0]
    if have == runs:
        return
    if have > runs:
        raise RuntimeError(f"{url} holds {have:,} runs, more than {runs:,}: drop it")
    name = urlsplit(url).path.lstrip("/")
    print(f"    generating {runs - have:,} runs in {name} (once; reused afterwards)", flush=True)
    started = time.monotonic()
    # The generated rows are consistent by construction: skip the per-row
    # foreign-key triggers (needs a superuser; the default `root` is one).
    connection.execute("SET session_replication_role = replica")
    for low in range(have + 1, runs + 1, BATCH):
        bounds = {"low": low, "high": min(low + BATCH - 1, runs)}
        with connection.transaction():
            for sql in (RUNS_SQL, STEP_RUNS_SQL, ATTEMPTS_SQL):
                connection.execute(sql, bounds)
        print(f"      {bounds['high']:,} runs ({time.monotonic() - started:.0f} s)", flush=True)
    for table in ("squidmesh_workflowrun", "squidmesh_steprun", "squidmesh_stepattempt"):
        connection.execute(f"VACUUM ANALYZE {table}")


def probe_database(url: str, repeats: int) -> dict:
    return probe_in_subprocess("benchmarks.history", url, repeats)


def measure(bench) -> None:
    base = os.environ["DATABASE_URL"]
    name = urlsplit(base).path.lstrip("/")
    large = bench.history_runs
    sizes = {
        10: database_url_for(base, f"{name}_h10"),
        large: database_url_for(base, f"{name}_h{large}"),
    }
    for runs, url in sizes.items():
        prepare(url, runs)
    small_result = probe_database(sizes[10], bench.history_repeats)
    large_result = probe_database(sizes[large], bench.history_repeats)
    label = f"{large:,} vs 10 runs" + (" (--quick: not 1,000,000)" if large < 1_000_000 else "")
    for probe, small in small_result.items():
        big = large_result[probe]
        if "unavailable" in small:
            bench.table.add(Row("5 history", probe, small["unavailable"]))
            continue
        bench.table.add(
            Row(
                "5 history",
                probe,
                f"{big['ms']:.2f} ms, {big['queries']} q",
                f"{small['ms']:.2f} ms, {small['queries']} q",
                ratio_value=big["ms"] / small["ms"],
                target="same queries, <= 2x",
                check=lambda row, b=big, s=small: (
                    b["queries"] == s["queries"] and b["ms"] <= 2 * s["ms"]
                ),
                note=label,
            )
        )


# -- the probe, run in a subprocess on one database ----------------------------------


def timed(call, repeats: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        call()  # warm-up: caches, templates, the first connection
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        durations.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        call()
    return {"ms": median(durations), "queries": len(queries)}


def http_get(client, url_name: str, query: str = ""):
    from django.urls import NoReverseMatch, reverse

    try:
        url = reverse(url_name) + query
    except NoReverseMatch:
        return None

    def get():
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
        response.content  # noqa: B018 - render streamed/lazy content inside the timing

    return get


def with_page_size(call, size: int):
    """Wrap `call` so the run admin renders pages of `size` rows while it runs."""
    if call is None:
        return None
    from django.contrib import admin

    from squidmesh.models import WorkflowRun

    model_admin = admin.site._registry[WorkflowRun]

    def paged():
        default, model_admin.list_per_page = model_admin.list_per_page, size
        try:
            call()
        finally:
            model_admin.list_per_page = default

    return paged


def probe(repeats: int) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    import squidmesh
    from squidmesh.models import WorkflowRun

    middle_at = WorkflowRun.objects.order_by("created_at").values_list("created_at", flat=True)
    count = WorkflowRun.objects.count()
    oldest = middle_at.first()
    newest = (
        WorkflowRun.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    )
    middle = (
        WorkflowRun.objects.filter(created_at__gte=oldest + (newest - oldest) / 2)
        .order_by("created_at")[:1]
        .get()
    )

    def inspect():
        run = squidmesh.inspect_run(middle.pk, include_history=True)
        for step_run in run.history:
            list(step_run.attempts.all())

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    probes = {
        # Page sizes that both tables fill, so both sides decode as many rows
        # (the 10-run table has 9 completed runs and 4 of bench.noop3).
        "list_runs(limit=10)": lambda: squidmesh.list_runs(limit=10),
        "list_runs(status=, limit=5)": lambda: squidmesh.list_runs(status="completed", limit=5),
        "list_runs(workflow=, limit=2)": lambda: squidmesh.list_runs(
            workflow="bench.noop3", limit=2
        ),
        "inspect_run(history)": inspect,
        # The admin has no page-size parameter: it renders its full page
        # (`list_per_page` rows) from the large table and 10 from the small.
        "admin run list (full page vs 10 rows)": http_get(
            client, "admin:squidmesh_workflowrun_changelist"
        ),
        # The same with a page of 10 on both sides: what grows with the table.
        "admin run list (page of 10)": with_page_size(
            http_get(client, "admin:squidmesh_workflowrun_changelist"), 10
        ),
        "REST run list (?limit=10)": http_get(client, "squidmesh_api:run-list", "?limit=10"),
    }
    result = {}
    for name, call in probes.items():
        if call is None:
            result[name] = {"unavailable": "n/a (surface not installed)"}
        else:
            result[name] = timed(call, repeats) | {"runs": count}
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["probe"]:
        print(json.dumps(probe(int(sys.argv[2]))))
