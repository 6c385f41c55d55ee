"""Heartbeats of running attempts, for brokers without a lease (Redis).

On django-q2's ORM broker a task pulled by a worker that dies comes back
when its lease ends, and the delivery closes the dead worker's attempt. Redis
has no lease: the pulled task is gone with the worker, and its attempt would
read `running` until its timeout plus grace had passed *and* the recovery
sweep looked at the run. So while a step body runs, a thread of the same
process touches the attempt's `heartbeat_at` every
`SQUIDMESH["HEARTBEAT_INTERVAL"]` seconds; an attempt silent for
`SQUIDMESH["HEARTBEAT_TIMEOUT"]` seconds is presumed dead (`presumed_dead`),
and the relay's dead-worker check re-sends its delivery
(`squidmesh.recovery.recover_silent_attempts`).

The thread lives in the process that runs the body, so a SIGKILLed worker
stops beating at once, while a body blocked in I/O or in a long query keeps
beating. Heartbeats are off on the transactional ORM broker, whose lease
already does this job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from squidmesh.conf import settings

__all__ = ["beating", "enabled"]

logger = logging.getLogger("squidmesh.runtime")

_lock = threading.Lock()
_attempts: set[Any] = set()
_thread: threading.Thread | None = None
_owner_pid: int | None = None


def enabled() -> bool:
    """Return whether running attempts give heartbeats (the broker has no lease)."""
    from squidmesh.runtime.dispatcher import get_dispatcher

    return bool(get_dispatcher().uses_outbox)


@contextlib.contextmanager
def beating(attempt_id: Any) -> Iterator[None]:
    """Keep the `running` attempt `attempt_id` beating for the duration of the block."""
    if not enabled():
        yield
        return
    with _lock:
        _attempts.add(attempt_id)
        _ensure_thread()
    try:
        yield
    finally:
        with _lock:
            _attempts.discard(attempt_id)


def _ensure_thread() -> None:
    # Threads do not survive a fork: a worker forked from a process that had
    # one starts its own.
    global _thread, _owner_pid
    if _thread is not None and _thread.is_alive() and _owner_pid == os.getpid():
        return
    _owner_pid = os.getpid()
    _thread = threading.Thread(target=_beat_forever, name="squidmesh-heartbeat", daemon=True)
    _thread.start()


def _beat_forever() -> None:
    from django.db import connection

    from squidmesh.models import StepAttempt

    stop = threading.Event()
    while not stop.wait(settings.HEARTBEAT_INTERVAL):
        with _lock:
            attempts = list(_attempts)
        if not attempts:
            continue
        try:
            StepAttempt.objects.running().filter(pk__in=attempts).beat_now()
        except Exception as error:  # the database is away: try again next beat
            logger.warning("Heartbeat of attempts %s failed: %s", attempts, error)
            connection.close()
        else:
            # Like a request: keep the connection only as long as CONN_MAX_AGE allows.
            connection.close_if_unusable_or_obsolete()
