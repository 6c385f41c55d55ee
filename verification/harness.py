"""Shared machinery of the verification scenarios: database, clusters, faults, load, report."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "verification.settings"

__all__ = [
    "KINDS",
    "Clusters",
    "Harness",
    "Load",
    "census",
    "converge",
    "drain_queue",
    "prepare_database",
    "print_table",
    "reconnecting",
    "restart_postgres",
    "setup_django",
]

T = TypeVar("T")


def setup_django() -> None:
    """Configure Django with the harness settings (the database is `DATABASE_URL`)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    for path in (str(ROOT), str(ROOT / "example_project")):
        if path not in sys.path:
            sys.path.insert(0, path)
    import logging

    import django

    django.setup()
    # django-q2 logs every enqueue at INFO; the harness prints its own summary.
    logging.getLogger("django-q").setLevel(logging.WARNING)


def prepare_database() -> str:
    """Create the harness database afresh and migrate it; return its name."""
    from django.core.management import call_command
    from django.db import connection

    settings_dict = connection.settings_dict
    if settings_dict["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit(
            "The verification harness needs PostgreSQL: set DATABASE_URL=postgres://… "
            f"(got {settings_dict['ENGINE']})."
        )
    import psycopg
    from psycopg import sql

    name = settings_dict["NAME"]
    if "verify" not in name:
        raise SystemExit(
            f"The harness drops and recreates its database; {name!r} does not look dedicated "
            "to it. Point DATABASE_URL at a database whose name contains 'verify'."
        )
    with psycopg.connect(
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None,
        password=settings_dict["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        # Each scenario checks its own runs only, on the current schema: start
        # from a new database (FORCE ends clusters a crashed harness left).
        database = sql.Identifier(name)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(database))
    call_command("migrate", verbosity=0)
    return name


def reconnecting(operation: Callable[[], T], *, within: float = 90.0) -> T:
    """Return `operation()`, reconnecting and retrying while the database is unreachable."""
    from django.db import InterfaceError, OperationalError, connections

    deadline = time.monotonic() + within
    while True:
        try:
            return operation()
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            # The server restarted (or is restarting): drop the dead socket.
            connections.close_all()
            time.sleep(0.5)


# -- clusters and faults -------------------------------------------------------


class Clusters:
    """`qcluster` subprocesses on the harness database, started, killed and restarted."""

    def __init__(self, count: int):
        self.count = count
        self.running: list[Any] = []
        self.kills = 0
        self.starts = 0
        self.logs: list[str] = []

    def start(self, count: int | None = None) -> None:
        from squidmesh.testing import Cluster

        for _ in range(self.count if count is None else count):
            cluster = Cluster(
                settings_module=SETTINGS,
                cwd=ROOT,
                pythonpath=[str(ROOT), str(ROOT / "example_project")],
            )
            self.logs.append(cluster.log.name)
            # Retried: a cluster started during a Postgres restart may die at once.
            for attempt in range(3):
                try:
                    cluster.start(ready_timeout=60)
                    break
                except (RuntimeError, TimeoutError):
                    cluster.kill()
                    if attempt == 2:
                        raise
                    time.sleep(2)
            self.running.append(cluster)
            self.starts += 1

    def kill_one(self, rng: random.Random) -> None:
        """SIGKILL one cluster (its whole process group: sentinel, pusher, workers, monitor)."""
        victim = self.running.pop(rng.randrange(len(self.running)))
        victim.kill()
        self.kills += 1

    def kill_all(self) -> None:
        while self.running:
            self.running.pop().kill()
            self.kills += 1

    def stop(self) -> None:
        while self.running:
            self.running.pop().kill()

    def failed_deliveries(self) -> int:
        """Count step tasks that raised (deferred, or an infrastructure fault), from the logs."""
        marker = "Failed 'squidmesh.runtime.executor.execute_step'"
        return sum(Path(name).read_text(errors="replace").count(marker) for name in self.logs)

    def report_logs(self, *, failed: bool, verbose: bool) -> None:
        """Keep the cluster logs of a failed scenario (and say where); drop them otherwise."""
        if not failed:
            for name in self.logs:
                Path(name).unlink(missing_ok=True)
            return
        if verbose:
            print(self.tail())
        print("cluster logs:", *self.logs, sep="\n  ")

    def tail(self, lines: int = 40) -> str:
        """Return the last lines of every cluster log (for a failure report)."""
        out = []
        for name in self.logs:
            text = Path(name).read_text(errors="replace").splitlines()
            out.append(f"--- {name}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


def restart_postgres() -> None:
    """Restart the local PostgreSQL server (every open connection breaks) and wait for it."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or not shutil.which("pg_ctlcluster"):
        raise SystemExit(
            "Cannot restart PostgreSQL here (no pg_ctlcluster / /etc/postgresql); "
            "run with --no-postgres-restart."
        )
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"],
        check=True,
        timeout=120,
    )
    for _ in range(60):
        ready = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False)
        if ready.returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL did not come back within 30 s")


# -- load ----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A kind of run the load generator starts, with the status it must end in."""

    name: str
    workflow: str
    payload: Callable[[random.Random], dict[str, Any]]
    expected: str


ALWAYS = 1_000_000

KINDS = [
    Kind(
        "success", "chaos.pipeline", lambda r: {"sleep": round(r.uniform(0, 1.5), 2)}, "completed"
    ),
    Kind(
        "retried",
        "chaos.pipeline",
        lambda r: {"sleep": round(r.uniform(0, 0.5), 2), "fail_times": r.randint(1, 2)},
        "completed",
    ),
    Kind(
        "terminal",
        "chaos.pipeline",
        lambda r: {"fail_times": ALWAYS, "terminal": True, "sleep": 0.2},
        "failed",
    ),
    Kind("fallback", "chaos.fallback", lambda r: {"fail_times": ALWAYS, "sleep": 0.1}, "completed"),
    Kind("exhausted", "chaos.exhausted", lambda r: {"fail_times": ALWAYS, "sleep": 0.1}, "failed"),
    Kind("slow", "chaos.pipeline", lambda r: {"sleep": round(r.uniform(1.5, 2.5), 2)}, "completed"),
]


@dataclass
class Load:
    """Runs started by the harness and the terminal statuses each may end in."""

    rng: random.Random
    expected: dict[str, frozenset[str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    started: int = 0
    cancels: int = 0
    replays: int = 0
    duplicates_injected: int = 0

    def start(self, kind: Kind | None = None) -> str:
        import squidmesh

        kind = kind or self.rng.choice(KINDS)
        payload = kind.payload(self.rng)
        key = f"verify-{self.started}"
        # The idempotency key makes a retry after a dropped connection safe.
        run = reconnecting(lambda: squidmesh.start_run(kind.workflow, payload, idempotency_key=key))
        self.started += 1
        self.expected[str(run.pk)] = frozenset({kind.expected})
        self.kinds[str(run.pk)] = kind.name
        return str(run.pk)

    def start_many(self, count: int) -> list[str]:
        return [self.start() for _ in range(count)]

    def cancel_random(self) -> None:
        """Cancel a random active run; it must then end `cancelled`."""
        import squidmesh
        from squidmesh.models import WorkflowRun

        active = reconnecting(
            lambda: list(
                WorkflowRun.objects.active()
                .filter(pk__in=list(self.expected))
                .values_list("pk", flat=True)[:200]
            )
        )
        if not active:
            return
        run_id = str(self.rng.choice(active))
        try:
            run = reconnecting(lambda: squidmesh.cancel_run(run_id))
        except squidmesh.InvalidTransition as refused:
            # Finished meanwhile, or our first try committed before the
            # connection dropped.
            if refused.status != "cancelled":
                return
        else:
            assert run.status in ("cancelled", "cancelling"), run.status
        self.expected[run_id] = frozenset({"cancelled"})
        self.cancels += 1

    def replay_random(self) -> None:
        """Replay a random finished run; the replay must end as its source's kind does."""
        import squidmesh
        from squidmesh.models import WorkflowRun

        finished = reconnecting(
            lambda: list(
                WorkflowRun.objects.terminal()
                .filter(pk__in=list(self.kinds))
                .values_list("pk", flat=True)[:200]
            )
        )
        if not finished:
            return
        source = str(self.rng.choice(finished))
        replay = reconnecting(lambda: squidmesh.replay_run(source))
        kind = next(k for k in KINDS if k.name == self.kinds[source])
        self.expected[str(replay.pk)] = frozenset({kind.expected})
        self.kinds[str(replay.pk)] = kind.name
        self.replays += 1

    def inject_duplicate(self) -> bool:
        """Copy a queued step task, as a broker redelivering it would present it twice."""
        from verification.broker import inject_duplicate

        if not reconnecting(lambda: inject_duplicate(self.rng)):
            return False
        self.duplicates_injected += 1
        return True


# -- observing -------------------------------------------------------------------


def census() -> dict[str, int]:
    """Count active runs by situation: queued, waiting (in a `wait`), retrying, mid-step."""
    from django.utils import timezone

    from squidmesh.lifecycle import RunStatus
    from squidmesh.models import StepAttempt, WorkflowRun
    from verification.invariants import queued_step_tasks

    def read() -> dict[str, int]:
        now = timezone.now()
        running = StepAttempt.objects.running().values_list("run_id", flat=True)
        mid_step = {str(run_id) for run_id in running}
        active = dict(WorkflowRun.objects.active().values_list("pk", "status"))
        active = {str(pk): status for pk, status in active.items()}
        counts = {"queued": 0, "waiting": 0, "retrying": 0, "mid-step": len(mid_step)}
        # A pending run has not started: its delivery waits for a worker, in
        # the broker or (Redis) already pulled into a cluster's local queue.
        queued = {pk for pk, status in active.items() if status == RunStatus.PENDING}
        for task in queued_step_tasks():
            status = active.get(task.run_id)
            if status is None or task.run_id in mid_step:
                continue
            if status == RunStatus.RETRYING:
                counts["retrying"] += 1
            elif task.not_before > now and task.step in WAIT_STEPS:
                counts["waiting"] += 1
            elif task.not_before <= now:
                queued.add(task.run_id)
        counts["queued"] = len(queued - mid_step)
        return counts

    return reconnecting(read)


WAIT_STEPS = {"pause", "fraud_screening"}


def all_terminal(run_ids: Collection[str] | None = None) -> bool:
    from squidmesh.models import WorkflowRun

    runs = WorkflowRun.objects.active()
    if run_ids is not None:
        runs = runs.filter(pk__in=list(run_ids))
    return not reconnecting(runs.exists)


def converge(bound: float) -> bool:
    """Wait until every run is terminal; return False if `bound` seconds pass first."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if all_terminal():
            return True
        time.sleep(0.25)
    return all_terminal()


def drain_queue(bound: float) -> int:
    """Wait until the step queue is empty (leftover duplicates absorbed); return what is left."""
    from verification.invariants import queued_step_tasks

    deadline = time.monotonic() + bound
    while True:
        left = len(reconnecting(queued_step_tasks))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


# -- the report ---------------------------------------------------------------------


@dataclass
class Harness:
    """One scenario's bookkeeping: faults, timing, figures, the final verdict."""

    title: str
    started: float = field(default_factory=time.monotonic)
    last_fault: float | None = None
    postgres_restarts: int = 0
    redis_flushes: int = 0
    tasks_flushed: int = 0
    redis_restarts: int = 0
    notes: list[tuple[str, Any]] = field(default_factory=list)

    def fault(self) -> None:
        self.last_fault = time.monotonic()

    def restart_postgres(self) -> None:
        restart_postgres()
        self.postgres_restarts += 1
        self.fault()

    def flush_redis(self) -> None:
        """Lose every queued task (FLUSHDB of the harness's own Redis db)."""
        from verification.broker import flush_queue

        self.tasks_flushed += flush_queue()
        self.redis_flushes += 1
        self.fault()

    def restart_redis(self, server: Any, downtime: float) -> None:
        """Stop the harness's Redis server for `downtime` seconds; it comes back empty."""
        server.restart(downtime)
        self.redis_restarts += 1
        self.fault()

    def note(self, label: str, value: Any) -> None:
        self.notes.append((label, value))

    def verdict(
        self,
        *,
        load: Load | None,
        clusters: Clusters | None,
        converged: bool,
        converged_at: float,
        leftover: int,
        expected: dict[str, frozenset[str]] | None = None,
    ) -> int:
        """Check the invariants, print the figures and the verdict; return the exit status."""
        from squidmesh.lifecycle import AttemptStatus
        from squidmesh.models import StepAttempt, StepRun, WorkflowRun
        from verification import broker, invariants
        from verification.chaos.models import BodyRun, DeliveryNote, DispatchRecord

        def read():
            ledger = list(BodyRun.objects.all())
            snapshot = invariants.Snapshot.take(
                ledger=ledger,
                dispatches=list(DispatchRecord.objects.all()),
                expected=expected if expected is not None else (load.expected if load else {}),
            )
            notes = Counter(DeliveryNote.objects.values_list("kind", flat=True))
            bodies = Counter((str(r.run_id), r.step, r.attempt) for r in ledger)
            refused = DeliveryNote.objects.filter(kind__in=["skipped", "deferred"])
            absorbed = sum(1 for n in refused if bodies.get((n.run_id, n.step, n.attempt), 0) <= 1)
            attempts = Counter(StepAttempt.objects.values_list("status", flat=True))
            statuses = Counter(WorkflowRun.objects.values_list("status", flat=True))
            return snapshot, notes, absorbed, attempts, statuses, len(ledger)

        snapshot, notes, absorbed, attempts, statuses, body_runs = reconnecting(read)
        results = invariants.check(snapshot)
        lost = len({v.run_id for v in results["no run lost or stuck"]})
        doubles = len(results["no double execution"])
        seen = notes["skipped"] + notes["deferred"]

        figures: list[tuple[str, Any]] = [
            ("runs", len(snapshot.runs)),
            ("  by status", ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))),
            ("step runs", reconnecting(StepRun.objects.count)),
            ("attempts", sum(attempts.values())),
            (
                "  by status",
                ", ".join(f"{s} {n}" for s, n in sorted(attempts.items())),
            ),
            ("step bodies observed (ledger)", body_runs),
            ("dispatches", len(snapshot.dispatches)),
        ]
        if load is not None:
            figures += [
                ("cancels / replays requested", f"{load.cancels} / {load.replays}"),
                ("duplicate deliveries injected", load.duplicates_injected),
            ]
        figures += [
            ("cluster kills (SIGKILL)", clusters.kills if clusters else 0),
            ("cluster starts", clusters.starts if clusters else 0),
            ("postgres restarts", self.postgres_restarts),
            *(
                [
                    ("redis flushes (FLUSHDB)", self.redis_flushes),
                    ("  queued tasks they dropped", self.tasks_flushed),
                    ("redis restarts", self.redis_restarts),
                ]
                if broker.current() == broker.REDIS
                else []
            ),
            *self.notes,
            ("duplicate deliveries seen", seen),
            ("  skipped (stale/done)", notes["skipped"]),
            ("  deferred (held elsewhere)", notes["deferred"]),
            ("  absorbed (no extra body run)", absorbed),
            ("late finishes discarded", notes["discarded"]),
            (
                "deliveries that raised (cluster logs)",
                clusters.failed_deliveries() if clusters else 0,
            ),
            ("  infrastructure faults noted", notes["fault"]),
            ("interrupted attempts closed", attempts.get(AttemptStatus.INTERRUPTED, 0)),
            ("leftover queued deliveries", leftover),
            ("lost", lost),
            ("double executions", doubles),
            (
                "time to converge after last fault" if self.last_fault else "time to converge",
                f"{converged_at:.1f} s" if converged else f"not converged ({converged_at:.0f} s)",
            ),
            ("wall time", f"{time.monotonic() - self.started:.0f} s"),
        ]
        print_table(f"{self.title}: figures", ["figure", "value"], figures)
        rows = [
            (name, "ok" if not found else "FAIL", len(found)) for name, found in results.items()
        ]
        print_table(f"{self.title}: invariants", ["invariant", "result", "violations"], rows)
        violations = [v for found in results.values() for v in found]
        for violation in violations[:50]:
            print(f"  {violation}")
        if len(violations) > 50:
            print(f"  … and {len(violations) - 50} more")
        if violations or not converged:
            print(f"{self.title}: FAILED ({len(violations)} violation(s))")
            return 1
        print(f"{self.title}: passed")
        return 0


def print_table(title: str, header: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Print `rows` as a plain-text table with aligned columns."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print(rule)
    for index, row in enumerate(cells):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if index == 0:
            print(rule)
    print(rule)
    sys.stdout.flush()
