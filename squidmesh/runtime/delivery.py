"""The django-q2 delivery being executed in this worker: its queue row and its timeouts.

Continuing a run inline (`SQUIDMESH['INLINE_STEPS']`) needs two things a
task function is not handed by django-q2: the id of the `OrmQ` row it was
pulled from (the monitor deletes that row once the task returns), and a way
to give each inline step its own timeout. The first comes from django-q2's
`pre_execute` signal; the second re-arms the worker's SIGALRM and the
guard's timer (the sentinel kills a worker whose timer runs out), which
are django-q2 1.11 internals (the dependency is pinned for that reason).
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from multiprocessing import current_process
from typing import Any

from squidmesh.runtime.dispatcher import EXECUTE_STEP

__all__ = [
    "Delivery",
    "connect",
    "current_delivery",
    "rearm_timeout",
    "worker_timer_available",
]


@dataclass(frozen=True)
class Delivery:
    """The queue row a worker pulled `execute_step(*args)` from."""

    row_id: int
    args: tuple[Any, ...]


_current: Delivery | None = None


def _remember_delivery(sender: Any, func: Any, task: dict[str, Any], **kwargs: Any) -> None:
    # Sent in the worker process right before the task function is called;
    # a worker runs one task at a time, so a module global is enough.
    global _current
    name = (
        func
        if isinstance(func, str)
        else getattr(func, "__module__", "") + "." + getattr(func, "__name__", "")
    )
    ack_id = task.get("ack_id")
    if name == EXECUTE_STEP and ack_id and not task.get("sync"):
        _current = Delivery(row_id=int(ack_id), args=tuple(task.get("args") or ()))
    else:
        _current = None


def connect() -> None:
    from django_q.signals import pre_execute

    pre_execute.connect(_remember_delivery, dispatch_uid="squidmesh.runtime.delivery")


def current_delivery(*args: Any) -> Delivery | None:
    """Return the delivery of `execute_step(*args)` running in this worker, if known."""
    if _current is not None and [str(a) for a in _current.args] == [str(a) for a in args]:
        return _current
    return None


def _worker_timer() -> Any:
    # django-q2 1.11 spawns workers as Process(target=worker, args=(task
    # queue, result queue, timer, timeout)); the guard reads `timer`.
    process_args: tuple[Any, ...] = getattr(current_process(), "_args", ())
    timer = process_args[2] if len(process_args) > 2 else None
    return timer if hasattr(timer, "get_lock") else None


def worker_timer_available() -> bool:
    """Return whether this process is a django-q2 worker whose timeout can be re-armed."""
    return _worker_timer() is not None


def rearm_timeout(seconds: float | None) -> bool:
    """Give the code that runs next in this worker a fresh timeout of `seconds`.

    Return False when this process is not a django-q2 worker (nothing to
    re-arm).
    """
    from django_q.exceptions import TimeoutException

    timer = _worker_timer()
    if timer is None:
        return False
    limit = -1 if not seconds else math.ceil(seconds)

    def timed_out(signum: int, frame: Any) -> None:
        raise TimeoutException(f"Task exceeded maximum timeout value ({limit} seconds)")

    with timer.get_lock():
        # The worker's own convention: busy = seconds left + 3 s of grace
        # for the guard, -1 = no limit.
        timer.value = limit + 3 if limit > 0 else -1
    if limit > 0:
        signal.signal(signal.SIGALRM, timed_out)
        signal.alarm(limit)
    else:
        signal.alarm(0)
    return True
