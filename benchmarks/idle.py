"""Section 8: what N idle clusters cost PostgreSQL: CPU, transactions/s, connections (N = 1-8).

Every cluster's pusher polls the broker every `poll` seconds even when
nothing is queued; on the ORM broker each poll is a query on PostgreSQL.
Transactions are read from `pg_stat_database` (each poll is one autocommit
transaction; backends report at most once a second, so a reading window is
long against that lag), CPU from psutil: the clusters' processes and the
PostgreSQL backends serving this database. The machine is shared, so each
reading carries the load average (`uptime`) at its end.
"""

from __future__ import annotations

import contextlib
import os
import time

from benchmarks.harness import (
    BenchCluster,
    Row,
    broker_name,
    postgres_cpu,
    reset_work_tables,
)

COUNTS = (1, 2, 4, 8)
SETTLE_SECONDS = 3.0


def transactions() -> int:
    """Return the transactions committed or rolled back on this database so far."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return int(cursor.fetchone()[0])


def connections_held() -> int:
    """Return the connections open on this database, ours excluded."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def transactions_per_empty_poll(polls: int = 40) -> float:
    """Return the transactions one pusher poll of an empty queue costs (django-q2's `dequeue`).

    Counted by PostgreSQL, not by Django: with `CONN_HEALTH_CHECKS` the
    first use of a connection after `close_old_connections()` (which the
    ORM broker calls on every poll) runs a `SELECT 1` of its own.
    """
    from django.db import connection
    from django_q.brokers import get_broker

    broker = get_broker()

    def flushed_count() -> int:
        # A backend reports its counts when it goes idle at least a second
        # after its last report: wait, end a transaction, then read.
        time.sleep(1.1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        time.sleep(0.2)
        return transactions()

    before = flushed_count()
    for _ in range(polls):
        broker.dequeue()  # the queue was just emptied: nothing is pulled
    after = flushed_count()
    # Between the two readings: our `SELECT 1` and the first reading's 2 queries.
    return max(after - before - 3, 0) / polls


def reading(count: int, seconds: float) -> dict[str, float]:
    """Start `count` idle clusters, measure for `seconds`, stop them; return the figures."""
    clusters: list[BenchCluster] = []
    try:
        for _ in range(count):
            clusters.append(BenchCluster().start())
        time.sleep(SETTLE_SECONDS)  # imports done, connections open, first polls made
        cluster_cpu = sum(cluster.cpu_seconds() for cluster in clusters)
        backends_cpu = postgres_cpu()
        committed = transactions()
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        committed = transactions() - committed
        backends_now = postgres_cpu()
        cluster_cpu = sum(cluster.cpu_seconds() for cluster in clusters) - cluster_cpu
        held = connections_held()
    finally:
        for cluster in clusters:
            with contextlib.suppress(Exception):
                cluster.stop()
    postgres = sum(used - backends_cpu.get(pid, 0.0) for pid, used in backends_now.items())
    return {
        # Our own second reading (2 autocommit queries) is not the clusters' polling.
        "transactions": max(committed - 2, 0) / elapsed,
        "postgres": postgres / elapsed * 100,
        "clusters": cluster_cpu / elapsed * 100,
        "connections": held,
        "load": os.getloadavg()[0],
    }


def measure(bench) -> None:
    from django.conf import settings

    poll = settings.Q_CLUSTER.get("poll", 0.2)
    broker = broker_name()
    seconds = max(3 * bench.idle_seconds, 15.0)
    reset_work_tables()
    # Redis's dequeue blocks a second on an empty queue (BLPOP): a few polls do.
    per_poll = transactions_per_empty_poll(40 if broker == "orm" else 3)
    health_checks = settings.DATABASES["default"].get("CONN_HEALTH_CHECKS")
    bench.table.add(
        Row(
            "8 idle",
            "transactions per empty poll of one cluster",
            per_poll,
            unit="",
            note=f"{broker} broker, django-q2 dequeue, CONN_HEALTH_CHECKS {health_checks}",
        )
    )
    for count in COUNTS:
        figures = reading(count, seconds)
        print(
            f"    {count} idle cluster(s): {figures['transactions']:.0f} transactions/s, "
            f"PostgreSQL {figures['postgres']:.1f} % CPU, clusters {figures['clusters']:.1f} %, "
            f"{figures['connections']} connections, load {figures['load']:.2f}",
            flush=True,
        )
        note = (
            f"{broker} broker, poll={poll:g}s, {seconds:.0f} s, load average {figures['load']:.2f}"
        )
        label = f"{count} idle cluster{'s' if count > 1 else ''}"
        bench.table.add(
            Row("8 idle", f"{label}: transactions/s", figures["transactions"], unit="/s", note=note)
        )
        bench.table.add(
            Row(
                "8 idle",
                f"{label}: PostgreSQL backends CPU",
                figures["postgres"],
                unit="% of a core",
            )
        )
        bench.table.add(
            Row("8 idle", f"{label}: clusters' own CPU", figures["clusters"], unit="% of a core")
        )
        bench.table.add(
            Row("8 idle", f"{label}: connections held", figures["connections"], unit="")
        )
