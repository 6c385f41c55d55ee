"""What every section needs: databases, a qcluster subprocess, waiting, statistics, the table."""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


# -- statistics -------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the `fraction` quantile of `values` (linear interpolation)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- the result table ---------------------------------------------------------


@dataclass
class Row:
    section: str
    measure: str
    squidmesh: float | str | None
    raw: float | str | None = None
    unit: str = ""
    #: "higher" if a larger squidmesh/raw ratio is better, "lower" otherwise.
    better: str = "lower"
    target: str = ""
    #: Evaluates the target: receives the row, returns True/False (None: no target).
    check: Callable[[Row], bool] | None = None
    note: str = ""
    #: Set when the two columns are not squidmesh/raw (history: large vs small table).
    ratio_value: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.ratio_value is not None:
            return self.ratio_value
        if isinstance(self.squidmesh, int | float) and isinstance(self.raw, int | float):
            return self.squidmesh / self.raw if self.raw else None
        return None

    def verdict(self) -> str:
        if self.check is None:
            return ""
        try:
            return "met" if self.check(self) else "MISSED"
        except (TypeError, ValueError):
            return "n/a"


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    header: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(
            f"  {row.section} / {row.measure}: squidmesh={fmt(row.squidmesh)} {row.unit} "
            f"raw={fmt(row.raw)} ratio={fmt(row.ratio, 2)} {row.verdict()}",
            flush=True,
        )
        return row

    def render(self) -> str:
        lines = [*self.header, ""]
        lines.append("| section | measure | squidmesh | raw django-q2 | ratio | target | verdict |")
        lines.append("|---|---|---:|---:|---:|---|---|")
        for row in self.rows:
            unit = f" {row.unit}" if row.unit else ""
            squid = fmt(row.squidmesh) + (unit if isinstance(row.squidmesh, int | float) else "")
            raw = fmt(row.raw) + (unit if isinstance(row.raw, int | float) else "")
            measure = row.measure + (f" ({row.note})" if row.note else "")
            lines.append(
                f"| {row.section} | {measure} | {squid} | {raw} | {fmt(row.ratio, 2)} "
                f"| {row.target} | {row.verdict()} |"
            )
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps(
            [
                {
                    "section": r.section,
                    "measure": r.measure,
                    "squidmesh": r.squidmesh,
                    "raw": r.raw,
                    "unit": r.unit,
                    "ratio": r.ratio,
                    "target": r.target,
                    "verdict": r.verdict(),
                    "note": r.note,
                }
                for r in self.rows
            ],
            indent=2,
        )


def fmt(value: Any, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if digits is None:
            digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# -- databases ----------------------------------------------------------------


def probe_in_subprocess(module: str, url: str, repeats: int) -> dict:
    """Run `python -m <module> probe <repeats>` on the database at `url`; return its JSON."""
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "benchmarks.settings"}
    result = subprocess.run(
        [sys.executable, "-m", module, "probe", str(repeats)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def database_url_for(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def ensure_database(url: str) -> bool:
    """Create the Postgres database named in `url` if missing; return whether it was created."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if exists:
            return False
        connection.execute(f'CREATE DATABASE "{name}"')
        return True


def broker_name() -> str:
    """Return the broker of the benchmark's `Q_CLUSTER`: "orm" or "redis"."""
    from django.conf import settings

    return "redis" if "redis" in settings.Q_CLUSTER else "orm"


def ratio_target(target: str, check: Callable[[Row], bool]) -> dict[str, Any]:
    """Return the `target`/`check` of a squidmesh/raw ratio row, for the ORM broker only.

    On Redis raw django-q2 writes nothing to PostgreSQL while squidmesh
    commits every step: the ratio is printed as a figure, not judged.
    """
    if broker_name() == "redis":
        return {"target": "- (orm broker)"}
    return {"target": target, "check": check}


def reset_work_tables() -> None:
    """Empty the runs, django-q2's queue and results, and the chain marks (between measurements)."""
    from django.apps import apps
    from django.db import connection
    from django_q.brokers import get_broker

    # Every squidmesh table (runs, steps, attempts and any dispatch outbox).
    engine = [model._meta.db_table for model in apps.get_app_config("squidmesh").get_models()]
    tables = [
        *engine,
        "django_q_ormq",
        "django_q_task",
        "django_q_schedule",
        "benchapp_chainfinish",
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
    if broker_name() == "redis":
        get_broker().delete_queue()  # only the benchmark cluster's list, never FLUSHDB


def queue_size() -> int:
    """Return the tasks queued on the broker (on the ORM broker: until acknowledged)."""
    from django_q.brokers import get_broker
    from django_q.models import OrmQ

    if broker_name() == "redis":
        return get_broker().queue_size()
    return OrmQ.objects.count()


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> float:
    """Wait for `predicate()` to be truthy; return the monotonic time it was seen true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout:.0f}s")
        time.sleep(interval)


# -- the cluster -----------------------------------------------------------------


class BenchCluster:
    """A qcluster subprocess with the benchmark settings (plus `overrides` of `Q_CLUSTER`)."""

    def __init__(self, overrides: dict[str, Any] | None = None):
        from squidmesh.testing import Cluster

        env = {}
        if overrides:
            base = json.loads(os.environ.get("BENCH_Q_CLUSTER", "{}"))
            env["BENCH_Q_CLUSTER"] = json.dumps({**base, **overrides})
        self.cluster = Cluster(settings_module="benchmarks.settings", cwd=ROOT, env=env)

    def start(self) -> BenchCluster:
        """Start the cluster; it is ready once the sentinel has spawned every process.

        (`squidmesh.testing.Cluster` waits for the INFO line "running.",
        which the recommended `log_level` of WARNING does not print.)
        """
        from django.conf import settings
        from django.db import connections

        from squidmesh.testing import wait_for

        connections.close_all()  # a forked cluster must not share this process's connections
        cluster = self.cluster
        cluster.process = subprocess.Popen(
            [sys.executable, "-m", "django", "qcluster"],
            env=cluster.env,
            cwd=cluster.cwd,
            stdout=cluster.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        expected = 2 + settings.Q_CLUSTER.get("workers", 1) + 2  # main, sentinel, pusher, monitor
        wait_for(
            lambda: cluster.process.poll() is not None or len(self.processes()) >= expected, 60
        )
        if cluster.process.poll() is not None:
            raise RuntimeError(
                f"qcluster exited with {cluster.process.returncode}:\n{cluster.output()}"
            )
        time.sleep(0.5)  # the workers import their modules
        return self

    def stop(self) -> None:
        self.cluster.stop(timeout=10)

    def worker_pids(self) -> list[int]:
        """Return the pids of the live worker processes (django-q2 logs "ready for work at PID")."""
        import psutil

        pids = [int(p) for p in re.findall(r"ready for work at (\d+)", self.cluster.output())]
        return [pid for pid in pids if psutil.pid_exists(pid)]

    def processes(self):
        import psutil

        root = psutil.Process(self.cluster.process.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                # children_*: workers that exited (recycled) and were reaped.
                total += times.user + times.system + times.children_user + times.children_system
        return total


@contextlib.contextmanager
def running_cluster(overrides: dict[str, Any] | None = None) -> Iterator[BenchCluster]:
    cluster = BenchCluster(overrides).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def postgres_cpu() -> dict[int, float]:
    """Return CPU seconds used so far by each server process on this database (but ours)."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    used = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            used[pid] = times.user + times.system
    return used


def cpu_since(cluster: BenchCluster, cluster_before: float, postgres_before: dict) -> float:
    """Return CPU seconds the cluster and its Postgres backends used since the two readings."""
    postgres_now = postgres_cpu()
    postgres = sum(value - postgres_before.get(pid, 0.0) for pid, value in postgres_now.items())
    return cluster.cpu_seconds() - cluster_before + postgres


def read_memory(pid: int) -> dict[str, float]:
    """Return VmRSS and VmHWM (peak) of `pid` in MiB, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values
