"""The harness's broker: django-q2's ORM queue, or Redis on a server the harness starts itself.

`python -m verification … --broker redis` runs every cluster against a
`redis-server` subprocess on its own port (default 6390), never the
machine's shared Redis: the Redis faults stop and flush that server.
The choice reaches the qcluster subprocesses through the environment that
`verification.settings` reads.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

__all__ = [
    "ORM",
    "REDIS",
    "RedisServer",
    "configure",
    "current",
    "flush_queue",
    "inject_duplicate",
    "queued_packages",
]

ORM = "orm"
REDIS = "redis"

#: Environment read by `verification.settings` (in the harness and its clusters).
BROKER_ENV = "SQUIDMESH_VERIFY_BROKER"
PORT_ENV = "SQUIDMESH_VERIFY_REDIS_PORT"
DB_ENV = "SQUIDMESH_VERIFY_REDIS_DB"


def configure(broker: str, *, redis_port: int, redis_db: int) -> None:
    """Select the broker for the harness and the clusters it starts (before Django setup)."""
    os.environ[BROKER_ENV] = broker
    os.environ[PORT_ENV] = str(redis_port)
    os.environ[DB_ENV] = str(redis_db)


def current() -> str:
    """Return the broker django-q2 uses here: `ORM` or `REDIS`."""
    from django_q.brokers import get_broker
    from django_q.brokers.redis_broker import Redis

    return REDIS if isinstance(get_broker(), Redis) else ORM


class RedisServer:
    """A `redis-server` subprocess without persistence: a restart comes back empty.

    Only a server this object started is ever stopped, by its process id.
    """

    def __init__(self, port: int):
        self.port = port
        self.process: subprocess.Popen | None = None
        self.directory = tempfile.mkdtemp(prefix="squidmesh-verify-redis-")
        self.log = Path(self.directory) / "redis.log"
        self.restarts = 0

    def start(self, ready_timeout: float = 10.0) -> None:
        if self._accepts_connections():
            raise SystemExit(
                f"Port {self.port} already has a server; the harness stops and flushes the "
                "Redis it uses, so it starts its own: pick a free port with --redis-port."
            )
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
                "--logfile",
                str(self.log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_timeout
        while not self._accepts_connections():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start: {self.log}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self, downtime: float) -> None:
        """Stop the server, leave it down for `downtime` seconds, start it again (empty)."""
        self.stop()
        time.sleep(downtime)
        self.start()
        self.restarts += 1

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


def _redis_broker():
    from django_q.brokers import get_broker

    return get_broker()


def queued_packages() -> list[tuple[str, datetime]]:
    """Return the signed task packages waiting in the broker, each with its "not before" time."""
    from django.utils import timezone

    if current() == ORM:
        from django_q.models import OrmQ

        return [(row.payload, row.lock) for row in OrmQ.objects.all()]
    broker = _redis_broker()
    now = timezone.now()
    return [(raw.decode(), now) for raw in broker.connection.lrange(broker.list_key, 0, -1)]


def flush_queue() -> int:
    """Lose every queued task: FLUSHDB of the harness's own Redis db (never FLUSHALL).

    Return how many tasks the queue held.
    """
    if current() != REDIS:
        raise RuntimeError("flush_queue is a Redis fault")
    broker = _redis_broker()
    with broker.connection.pipeline() as pipeline:
        pipeline.llen(broker.list_key)
        pipeline.flushdb()
        queued, _ = pipeline.execute()
    return int(queued)


def inject_duplicate(rng: random.Random) -> bool:
    """Deliver a step task a second time, as a broker (or the outbox relay) may.

    On the ORM broker: a copy of a random queued row. On Redis, whose
    clusters pull tasks as soon as they arrive, the list is nearly always
    empty: re-send the delivery of one of the last attempts started, as a
    relay killed after its enqueue but before its commit does.
    """
    if current() == ORM:
        from django_q.models import OrmQ

        rows = list(OrmQ.objects.order_by("?")[:1])
        if not rows:
            return False
        row = rows[0]
        OrmQ.objects.create(key=row.key, payload=row.payload, lock=row.lock)
        return True
    from django_q.tasks import async_task

    from squidmesh.models import StepAttempt
    from squidmesh.runtime.dispatcher import EXECUTE_STEP

    recent = list(
        StepAttempt.objects.order_by("-started_at").values_list(
            "run_id", "step_run__step", "number"
        )[:50]
    )
    if not recent:
        return False
    run_id, step, attempt = rng.choice(recent)
    async_task(EXECUTE_STEP, str(run_id), step, attempt)
    return True
