"""Parse the command line, prepare the database, run the sections, print the table."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

from benchmarks.harness import ROOT, Table

SECTIONS = {
    "throughput": "benchmarks.throughput",
    "latency": "benchmarks.latency",
    "delays": "benchmarks.delays",
    "start": "benchmarks.start_rate",
    "history": "benchmarks.history",
    "memory": "benchmarks.memory",
    "maintenance": "benchmarks.maintenance",
    "idle": "benchmarks.idle",
}
# `idle` starts up to 8 clusters at once: asked for by name, not part of "all".
DEFAULT_SECTIONS = [name for name in SECTIONS if name != "idle"]

QUICK = {
    "runs": 300,
    "reps": 3,
    "latency_samples": 15,
    "delay_samples": 10,
    "starts_per_thread": 200,
    "history_runs": 100_000,
    "history_repeats": 10,
    "soak_runs": 1_000,
    "idle_seconds": 5.0,
}
FULL = {
    "runs": 2_000,
    "reps": 3,
    "latency_samples": 40,
    "delay_samples": 25,
    "starts_per_thread": 1_000,
    "history_runs": 1_000_000,
    "history_repeats": 20,
    "soak_runs": 10_000,
    "idle_seconds": 10.0,
}


@dataclass
class Bench:
    runs: int
    reps: int
    latency_samples: int
    delay_samples: int
    starts_per_thread: int
    history_runs: int
    history_repeats: int
    soak_runs: int
    idle_seconds: float
    table: Table = field(default_factory=Table)


def parse_assignments(pairs: list[str], option: str) -> dict:
    values = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            sys.exit(f"{option} expects KEY=VALUE, got {pair!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--runs", type=int, help="runs/chains per throughput repetition")
    parser.add_argument("--reps", type=int, help="repetitions (medians are reported); >= 3")
    parser.add_argument("--history-runs", type=int, help="size of the large history table")
    parser.add_argument("--soak-runs", type=int, help="runs processed in the memory soak")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=list(SECTIONS),
        default=DEFAULT_SECTIONS,
        help="sections to run (default: all but idle)",
    )
    parser.add_argument(
        "--broker",
        choices=("orm", "redis"),
        default="orm",
        help="django-q2 broker of both sides (redis: the machine's Redis at 127.0.0.1:6379)",
    )
    parser.add_argument(
        "--redis-db",
        type=int,
        default=14,
        help="Redis db number of the queue (--broker redis); only the cluster's list is cleared",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a Q_CLUSTER key for both sides (JSON value), e.g. --set bulk=10",
    )
    parser.add_argument(
        "--squidmesh",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a SQUIDMESH setting (JSON value)",
    )
    parser.add_argument(
        "--no-health-checks",
        dest="health_checks",
        action="store_false",
        help="CONN_HEALTH_CHECKS off (one transaction per idle poll instead of two)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    options = parser.parse_args(argv)
    if options.reps is not None and options.reps < 3:
        parser.error("--reps must be at least 3 (ratios are medians over repetitions)")
    return options


def main(argv: list[str] | None = None) -> None:
    options = arguments(argv)
    sizes = dict(QUICK if options.quick else FULL)
    for key in ("runs", "reps", "history_runs", "soak_runs"):
        if getattr(options, key) is not None:
            sizes[key] = getattr(options, key)
    bench = Bench(**sizes)

    # Settings are read once at setup, here and in every qcluster subprocess:
    # the environment carries the overrides to both.
    os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/sm_bench")
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ["BENCH_Q_CLUSTER"] = json.dumps(parse_assignments(options.set, "--set"))
    os.environ["BENCH_SQUIDMESH"] = json.dumps(parse_assignments(options.squidmesh, "--squidmesh"))
    os.environ["BENCH_BROKER"] = options.broker
    os.environ["BENCH_CONN_HEALTH_CHECKS"] = "1" if options.health_checks else "0"
    os.environ["BENCH_REDIS_DB"] = str(options.redis_db)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    from benchmarks.harness import ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    logging.getLogger("django-q").setLevel(logging.WARNING)  # not one line per enqueue here
    if connection.vendor != "postgresql":
        sys.exit("The benchmark needs PostgreSQL: set DATABASE_URL=postgres://…")
    call_command("migrate", verbosity=0, interactive=False)
    bench.table.header = header(bench, settings, connection)
    print("\n".join(bench.table.header), flush=True)
    try:
        for name in options.sections:
            run_section(bench, name)
    finally:
        report = bench.table.render()
        print("\n" + report)
        if options.markdown:
            options.markdown.write_text(report + "\n")
        if options.json:
            options.json.write_text(bench.table.as_json() + "\n")


def server_started() -> str:
    """Return when the Postgres server started, waiting for it if it is down."""
    from django.db import connection
    from django.db.utils import Error

    from benchmarks.harness import wait_until

    found: list[str] = []

    def ask() -> bool:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_postmaster_start_time()::text")
                found.append(cursor.fetchone()[0])
            return True
        except Error:
            connection.close()
            return False

    wait_until(ask, timeout=300, interval=2)
    return found[-1]


def run_section(bench: Bench, name: str, attempts: int = 3) -> None:
    """Measure one section; redo it if the database server restarted meanwhile.

    The machine is shared: another session restarting Postgres would
    otherwise crash the run or leave a repetition timed across a restart.
    """
    from django.db.utils import Error

    for attempt in range(1, attempts + 1):
        print(f"\n== {name}" + (f" (attempt {attempt})" if attempt > 1 else ""), flush=True)
        started, rows = server_started(), len(bench.table.rows)
        try:
            import_module(SECTIONS[name]).measure(bench)
        except Error as error:
            print(f"   database error ({error}); redoing the section", flush=True)
        else:
            if server_started() == started:
                return
            print("   the database server restarted during the section; redoing it", flush=True)
        del bench.table.rows[rows:]
        bench.table.header.append(f"({name}: redone after a database restart)")
    raise RuntimeError(f"section {name}: the database kept restarting")


def header(bench: Bench, settings, connection) -> list[str]:
    import django
    import django_q

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = "?"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    from squidmesh.conf import settings as squidmesh_settings

    cluster = {k: v for k, v in settings.Q_CLUSTER.items() if k != "name"}
    from benchmarks.harness import broker_name

    return [
        f"squidmesh benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}, commit {commit}",
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"django-q2 {getattr(django_q, 'VERSION', '?')}, PostgreSQL {postgres}, "
        f"{os.cpu_count()} CPUs, load average at start {load}",
        f"broker {broker_name()} (both sides), Q_CLUSTER {json.dumps(cluster)}",
        f"CONN_MAX_AGE {settings.DATABASES['default']['CONN_MAX_AGE']}, CONN_HEALTH_CHECKS "
        f"{settings.DATABASES['default']['CONN_HEALTH_CHECKS']}, "
        f"SQUIDMESH {json.dumps(settings.SQUIDMESH)} (INLINE_STEPS in effect: "
        f"{squidmesh_settings.INLINE_STEPS})",
        f"medians over {bench.reps} repetitions; ratio = squidmesh / raw "
        "(history: large table / 10 runs)",
    ]
