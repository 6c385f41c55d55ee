"""Time `GET /api/runs/` over a large runs table: first page, cursor pages, deep and filtered pages."""

# Usage (PostgreSQL; an existing, empty database is migrated and filled on
# first use):
#
#     DATABASE_URL=postgres://root@127.0.0.1:5432/sm_bench \
#         python benchmarks/rest_list_runs.py --runs 1000000

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from rest_framework.test import APIClient

    from squidmesh.models import WorkflowRun

    setup_test_environment()  # ALLOWED_HOSTS gets "testserver"
    if connection.vendor != "postgresql":
        sys.exit("Point DATABASE_URL at PostgreSQL.")
    call_command("migrate", verbosity=0)
    present = WorkflowRun.objects.count()
    if present < options.runs:
        fill(connection, options.runs - present)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE squidmesh_workflowrun")
    print(f"runs in table: {WorkflowRun.objects.count():,}")

    client = APIClient()
    # A superuser: the REST API requires squidmesh.view_workflowrun, which a
    # superuser holds without the permission queries a plain staff user costs.
    staff, _ = User.objects.update_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client.force_authenticate(staff)

    def timed(url: str) -> tuple[float, int, dict]:
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.content[:500]
        return elapsed, len(queries), response.json()

    def report(label: str, url: str) -> dict:
        timings, counts, body = [], set(), {}
        for _ in range(options.repeat):
            elapsed, count, body = timed(url)
            timings.append(elapsed)
            counts.add(count)
        print(
            f"{label:<44} median {statistics.median(timings):7.1f} ms  "
            f"max {max(timings):7.1f} ms  queries {sorted(counts)}  rows {len(body['results'])}"
        )
        return body

    first = report("first page (limit 50)", "/api/runs/")
    report("first page (limit 1000)", "/api/runs/?limit=1000")
    page = first
    for _ in range(10):
        page = timed(page["next"])[2]
    report("11th page via cursor (limit 50)", page["next"])
    middle = WorkflowRun.objects.order_by("-created_at")[options.runs // 2].created_at
    report("page at the middle (created_before)", f"/api/runs/?created_before={stamp(middle)}")
    report("status=failed", "/api/runs/?status=failed")
    report("workflow=tests.flaky", "/api/runs/?workflow=tests.flaky")
    report(
        "workflow + status + trigger",
        "/api/runs/?workflow=tests.flaky&status=failed&trigger=manual",
    )

    queryset = WorkflowRun.objects.newest_first().defer("payload", "context", "last_error")
    print("\nEXPLAIN ANALYZE of the first page:")
    print(queryset[:51].explain(analyze=True))
    print("\nEXPLAIN ANALYZE of status=failed:")
    print(queryset.with_status("failed")[:51].explain(analyze=True))


def stamp(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def fill(connection, count: int) -> None:
    """Insert `count` runs spread over a year, in batches, straight into the table."""
    print(f"inserting {count:,} runs …", flush=True)
    workflows = (
        "ARRAY['tests.three_steps','tests.flaky','shop.order_fulfilment','shop.daily_report']"
    )
    statuses = "ARRAY['completed','completed','completed','failed','cancelled','pending','running']"
    batch = 200_000
    with connection.cursor() as cursor:
        for offset in range(0, count, batch):
            cursor.execute(
                f"""
                INSERT INTO squidmesh_workflowrun
                    (id, workflow, trigger, status, payload, context, current_step,
                     created_at, updated_at)
                SELECT gen_random_uuid(),
                       ({workflows})[1 + (n %% 4)],
                       'manual',
                       ({statuses})[1 + (n %% 7)],
                       '{{"label": "bench"}}'::jsonb,
                       '{{"a": 1, "b": 2}}'::jsonb,
                       NULL,
                       now() - (n * interval '31 seconds'),
                       now() - (n * interval '31 seconds')
                FROM generate_series(%s, %s) AS n
                """,
                [offset + 1, min(offset + batch, count)],
            )
            print(f"  {min(offset + batch, count):,}", flush=True)


if __name__ == "__main__":
    main()
