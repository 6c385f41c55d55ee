"""Test helpers for host apps: run a real qcluster, wait for runs, drain the queue inline."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import connections

if TYPE_CHECKING:
    from squidmesh.models import WorkflowRun

__all__ = ["Cluster", "drain", "run_cluster", "wait_for", "wait_for_run"]


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Return the first truthy value of `predicate()`; raise `TimeoutError` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def wait_for_run(
    run_id: Any, statuses: Iterable[str] | None = None, timeout: float = 30.0
) -> WorkflowRun:
    """Return the run once its status is in `statuses` (default: any terminal status)."""
    from squidmesh.api import inspect_run
    from squidmesh.lifecycle import TERMINAL_STATUSES

    wanted = set(statuses or TERMINAL_STATUSES)
    last: list[WorkflowRun | None] = [None]

    def reached() -> WorkflowRun | None:
        run = inspect_run(run_id, include_history=True)
        last[0] = run
        return run if run.status in wanted else None

    try:
        found: WorkflowRun = wait_for(reached, timeout)
        return found
    except TimeoutError:
        seen = last[0]
        raise TimeoutError(
            f"run {run_id} still {seen.status if seen is not None else '?'} at step "
            f"{seen.current_step if seen is not None else '?'} after {timeout}s "
            f"(wanted {sorted(wanted)})"
        ) from None


#: Starts `qcluster` like `python -m django qcluster`, but with django-q2's
#: logger at INFO: readiness is its "Q Cluster … running." line, and a project
#: that follows the recommended `log_level: WARNING` would never print it.
QCLUSTER_BOOT = """
import logging
import django
django.setup()
logging.getLogger("django-q").setLevel(logging.INFO)
from django.core.management import call_command
call_command("qcluster")
"""


class Cluster:
    """A `manage.py qcluster` subprocess using the current database (the test database too)."""

    def __init__(
        self,
        settings_module: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        pythonpath: Iterable[str] = (),
    ):
        from django.conf import settings

        self.settings_module = settings_module or os.environ["DJANGO_SETTINGS_MODULE"]
        database = connections["default"].settings_dict["NAME"]
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            # Settings read this to point the subprocess at the test database.
            "SQUIDMESH_TEST_DB_NAME": str(database),
            "PYTHONPATH": os.pathsep.join([*pythonpath, *sys.path]),
            **(env or {}),
        }
        self.cwd = str(cwd or Path(settings.BASE_DIR if hasattr(settings, "BASE_DIR") else "."))
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - outlives this method
            prefix="qcluster-", suffix=".log", delete=False
        )

    def start(self, ready_timeout: float = 30.0) -> Cluster:
        # A forked cluster must not inherit this process's open connections.
        connections.close_all()
        self.process = process = subprocess.Popen(
            [sys.executable, "-c", QCLUSTER_BOOT],
            env=self.env,
            cwd=self.cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() takes the workers too
        )
        wait_for(lambda: "running." in self.output() or process.poll() is not None, ready_timeout)
        if process.poll() is not None:
            raise RuntimeError(f"qcluster exited with {process.returncode}:\n{self.output()}")
        return self

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole cluster (sentinel, pusher, workers, monitor) at once."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 3.0) -> None:
        if not self.process or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@contextlib.contextmanager
def run_cluster(**kwargs: Any) -> Iterator[Cluster]:
    """Run a qcluster subprocess for the duration of the block."""
    cluster = Cluster(**kwargs).start()
    try:
        yield cluster
    finally:
        cluster.stop()
        # `output()` reads the log by name; an open handle would be a
        # ResourceWarning (an error in suites with filterwarnings=error).
        cluster.log.close()


def drain(*, include_delayed: bool = False, max_tasks: int = 1000) -> int:
    """Execute queued squidmesh tasks (steps, cron ticks) until none is due; return how many ran.

    For fast unit tests on the ORM broker. Delayed tasks (retry backoff,
    waits) run only with `include_delayed`. Integration tests should use a
    real cluster (`run_cluster`) instead.
    """
    from django.utils import timezone
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    from squidmesh.cron_schedules.schedule_rows import FIRE
    from squidmesh.cron_schedules.ticks import fire
    from squidmesh.runtime.dispatcher import EXECUTE_STEP
    from squidmesh.runtime.executor import execute_step

    executed = 0
    while executed < max_tasks:
        queued = OrmQ.objects.order_by("lock", "id")
        if not include_delayed:
            queued = queued.filter(lock__lte=timezone.now())
        row = queued.first()
        if row is None:
            return executed
        task = SignedPackage.loads(row.payload)
        row.delete()
        if task["func"] == EXECUTE_STEP:
            execute_step(*task["args"])
            executed += 1
        elif task["func"] == FIRE:  # a cron tick queued by django-q2's scheduler
            fire(*task["args"], **task["kwargs"])
            executed += 1
    return executed
