"""The outbox relay: hand due outbox messages to the broker, and re-send deliveries of dead workers.

Brokers other than django-q2's ORM broker on squidmesh's database cannot
join squidmesh's transactions, so the dispatcher writes each dispatch as an
`OutboxMessage` in the state change's transaction. A relay claims the due
messages (`SELECT ... FOR UPDATE SKIP LOCKED`, so several relays share the
work), enqueues them on the broker and deletes them, in one transaction of at
most `SQUIDMESH["RELAY_BATCH"]` messages:

- a relay killed mid-batch rolls back: its messages stay and are handed over
  again, so nothing is lost, and what was already enqueued is delivered
  twice; the executor skips the duplicate (at-least-once, as on any broker);
- a broker that refuses (Redis down) leaves the message in the outbox with
  its error, and the relay backs off and retries until the broker is back.

It polls every `SQUIDMESH["RELAY_POLL"]` seconds with one indexed query that
also looks one poll ahead, so a message due before the next poll is handed
over when due, not up to a poll late. Every `HEARTBEAT_INTERVAL` seconds it
also re-sends the delivery of attempts whose worker stopped beating
(`squidmesh.runtime.heartbeat`).

A relay runs inside each qcluster (a thread of one worker process per
database and machine, elected with a file lock) and as
`manage.py squidmesh relay`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.utils import timezone

from squidmesh.conf import settings

if TYPE_CHECKING:
    from squidmesh.runtime.dispatcher import Dispatcher

__all__ = [
    "Relay",
    "RelayPass",
    "describe_outbox",
    "outbox_status",
    "run_outbox",
    "start_in_worker",
]

logger = logging.getLogger("squidmesh.relay")

#: Longest pause between hand-over tries while the broker refuses them.
MAX_BACKOFF = 5.0
#: How often a standby worker tries to become its machine's relay.
STANDBY_SECONDS = 1.0


@dataclass(frozen=True)
class RelayPass:
    """What one pass of the relay did."""

    handed_over: int = 0
    #: Due time of the next message, when one is due within the next poll.
    next_due: datetime | None = None
    #: The broker's error when it refused a message (the message stays).
    error: str | None = None


class Relay:
    """Move due outbox messages to the broker; one instance per thread."""

    def __init__(self, *, poll: float | None = None, batch: int | None = None):
        self.poll = float(settings.RELAY_POLL if poll is None else poll)
        self.batch = int(settings.RELAY_BATCH if batch is None else batch)
        self.failures = 0
        self._brokers: dict[str | None, Any] = {}
        self._next_dead_check = 0.0

    def relay_once(self) -> RelayPass:
        """Hand over up to `batch` due messages in one transaction and delete them."""
        from squidmesh.models import OutboxMessage
        from squidmesh.state.outbox import forget_handed_over, record_refused_handover

        now = timezone.now()
        # A plain read first: an idle relay costs one indexed query per poll.
        upcoming = OutboxMessage.objects.oldest_due(now + timedelta(seconds=self.poll))
        if upcoming is None or upcoming > now:
            return RelayPass(next_due=upcoming)
        dispatcher = _dispatcher()
        with transaction.atomic(using=_alias()):
            messages = OutboxMessage.objects.claim(now, self.batch)
            sent: list[int] = []
            error: Exception | None = None
            for message in messages:
                try:
                    dispatcher.send(message.as_dispatch(), broker=self._broker(message.cluster))
                except Exception as refused:
                    error = refused
                    self._brokers.pop(message.cluster, None)  # reconnect next time
                    break
                sent.append(message.pk)
            forget_handed_over(sent)
            if error is not None:
                record_refused_handover(messages[len(sent)], error)
        reason = None if error is None else f"{type(error).__name__}: {error}"
        return RelayPass(handed_over=len(sent), error=reason)

    def step(self) -> float:
        """Run one pass (and the dead-worker check when due); return how long to sleep."""
        try:
            result = self.relay_once()
            self._check_dead_workers()
        except Exception as error:  # the database is away: back off, reconnect
            self.failures += 1
            logger.warning("Outbox relay failed: %s", error)
            connections[_alias()].close()
            return self._backoff()
        if result.error:
            self.failures += 1
            if self.failures == 1:
                logger.warning(
                    "Outbox relay: the broker refused a message (%s); retrying.", result.error
                )
            return self._backoff()
        if self.failures:
            logger.warning("Outbox relay: the broker takes messages again.")
            self.failures = 0
        if result.handed_over:
            return 0.0  # more may be due
        if result.next_due is not None:
            return max(0.0, min(self.poll, (result.next_due - timezone.now()).total_seconds()))
        return self.poll

    def run(self, stop: threading.Event | None = None) -> None:
        """Relay until `stop` is set (forever without one)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            pause = self.step()
            if pause:
                stop.wait(pause)

    def _backoff(self) -> float:
        backoff: float = min(self.poll * 2 ** min(self.failures, 10), MAX_BACKOFF)
        return backoff

    def _broker(self, cluster: str | None) -> Any:
        if cluster not in self._brokers:
            from django_q.brokers import get_broker

            self._brokers[cluster] = get_broker(cluster)
        return self._brokers[cluster]

    def _check_dead_workers(self) -> None:
        if time.monotonic() < self._next_dead_check:
            return
        self._next_dead_check = time.monotonic() + settings.HEARTBEAT_INTERVAL
        from squidmesh.recovery import recover_silent_attempts

        recover_silent_attempts()


def outbox_status() -> dict[str, Any]:
    """Return the outbox's state: messages waiting, the relay's lag, the last hand-over error.

    `lag` is the age in seconds of the oldest message that is due (0 when
    none is): how far behind the relay, or the broker, is.
    """
    from squidmesh.models import OutboxMessage

    now = timezone.now()
    oldest = OutboxMessage.objects.oldest_due(now)
    failing = (
        OutboxMessage.objects.filter(failed_handovers__gt=0)
        .order_by("-failed_handovers")
        .values("failed_handovers", "last_error")
        .first()
    )
    return {
        "in_use": bool(_dispatcher().uses_outbox),
        "waiting": OutboxMessage.objects.count(),
        "due": OutboxMessage.objects.due_by(now).count(),
        "lag": max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        "last_error": failing["last_error"] if failing else None,
    }


def describe_outbox(state: dict[str, Any]) -> str:
    """Return one line about `outbox_status()` for operators."""
    line = (
        f"Outbox: {state['waiting']} message(s) waiting, {state['due']} due; "
        f"relay lag {state['lag']:.1f} s"
    )
    if state["last_error"]:
        line += f"; broker refused: {state['last_error']}"
    return line


def run_outbox(run: Any) -> dict[str, Any]:
    """Return the outbox messages of `run` (its deliveries not yet handed over) and the lag."""
    from squidmesh.models import OutboxMessage

    now = timezone.now()
    oldest = OutboxMessage.objects.oldest_due(now)
    messages = list(
        OutboxMessage.objects.filter(run_id=run.pk)
        .order_by("due_at", "id")
        .values("step", "attempt", "due_at", "failed_handovers", "last_error")
    )
    return {
        "messages": messages,
        "lag": max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
    }


# -- the relay inside a qcluster ----------------------------------------------------


def start_in_worker(sender: Any = None, **kwargs: Any) -> None:
    """django-q2 `post_spawn` receiver: let this worker process stand for its machine's relay.

    Every worker of every cluster starts a thread, but only the one holding
    the machine's relay lock for this database relays; the others retry the
    lock every second, so a worker that dies (its lock goes with it) is
    replaced within about a second. The relay is a thread of a worker, not of
    the cluster's sentinel, because django-q2 offers no hook in the sentinel;
    it does not slow the worker's tasks (it sleeps, or waits on I/O).
    """
    if not settings.RELAY_IN_CLUSTER or not _dispatcher().uses_outbox:
        return
    thread = threading.Thread(target=_elected_relay, name="squidmesh-relay", daemon=True)
    thread.start()


def _elected_relay() -> None:
    lock = _machine_lock()
    while lock is not None and not lock():
        time.sleep(STANDBY_SECONDS)
    logger.info("Outbox relay running in process %s.", os.getpid())
    Relay().run()


def _machine_lock() -> Callable[[], bool] | None:
    """Return a callable that tries to take this machine's relay lock (None: no file locks)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): every worker relays, SKIP LOCKED shares the work
        return None
    database = connections[_alias()].settings_dict
    identity = "|".join(str(database.get(key)) for key in ("ENGINE", "HOST", "PORT", "NAME"))
    digest = hashlib.sha1(identity.encode()).hexdigest()[:16]  # a name, not security
    path = os.path.join(tempfile.gettempdir(), f"squidmesh-relay-{digest}.lock")
    handle = open(path, "a")  # noqa: SIM115 - held for the life of the process

    def take() -> bool:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    return take


def _alias() -> str:
    from squidmesh.models import OutboxMessage

    return router.db_for_write(OutboxMessage)


def _dispatcher() -> Dispatcher:
    from squidmesh.runtime.dispatcher import get_dispatcher

    return get_dispatcher()
