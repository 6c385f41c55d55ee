"""Turn execution intent ("run step S of run R, attempt N, at time T") into queue work.

The default dispatcher enqueues django-q2 tasks. On django-q2's ORM broker
using squidmesh's database, the queue row is written on the same connection
as the state change, so both commit or neither does (an outbox without a
relay). Delayed work (retry backoff, `wait`) is a queue row whose `lock`
("no cluster may pull before") is the due time: django-q2 picks it up within
one `poll` of being due, where its ONCE schedules are only checked every 30 s.

Every other broker (Redis, the ORM broker on another database alias) cannot
join squidmesh's transaction, so work is written to squidmesh's outbox table
in the state change's transaction instead, and the relay
(`squidmesh.runtime.relay`) hands it to the broker once due.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.utils import timezone

from squidmesh.conf import settings

__all__ = ["Dispatch", "Dispatcher", "DjangoQDispatcher", "get_dispatcher"]

EXECUTE_STEP = "squidmesh.runtime.executor.execute_step"


@dataclass(frozen=True)
class Dispatch:
    """One unit of queue work: identifiers only, never payload or context."""

    run_id: str
    workflow: str
    step: str
    attempt: int
    due: datetime | None = None
    timeout: float | None = None

    @property
    def task_name(self) -> str:
        # django-q2's Task.name is limited to 100 characters.
        return f"{self.run_id}:{self.step}#{self.attempt}"[:100]


class Dispatcher:
    """The executor interface the engine talks to; subclass to use another queue."""

    #: True when `dispatch` writes in the caller's transaction (commit together).
    transactional = False
    #: True when `dispatch` writes an outbox row that the relay hands to the broker.
    uses_outbox = False

    def dispatch(self, work: Dispatch) -> str | None:
        """Queue `work` to run `execute_step(run_id, step, attempt)` at or after `work.due`.

        Return the queue's task id when known.
        """
        raise NotImplementedError

    def hand_over(self, work: Dispatch, row_id: int) -> str | None:
        """Make the queue work this worker holds (`row_id`) carry `work` instead.

        Return the task id, or None if this dispatcher cannot (the engine
        then dispatches `work` normally and does not continue inline).
        """
        return None

    def send(self, work: Dispatch, broker: Any = None) -> str:
        """Enqueue `work` on the broker now: the relay's hand-over of an outbox message."""
        raise NotImplementedError


class DjangoQDispatcher(Dispatcher):
    """Dispatch step tasks through django-q2 (`Q_CLUSTER` configures the broker)."""

    @property
    def transactional(self) -> bool:  # type: ignore[override]
        from django_q.conf import Conf

        from squidmesh.models import WorkflowRun

        return bool(
            Conf.ORM
            and not Conf.SYNC
            and _uses_orm_broker()
            and router.db_for_write(WorkflowRun) == Conf.ORM
        )

    @property
    def uses_outbox(self) -> bool:  # type: ignore[override]
        """Return whether dispatches go through the outbox and its relay (non-transactional brokers)."""
        from django_q.conf import Conf

        return not Conf.SYNC and not self.transactional

    def dispatch(self, work: Dispatch) -> str | None:
        if self.transactional:
            return self._enqueue(work)
        if self.uses_outbox:
            # Written in the caller's transaction: the work exists exactly
            # when the state change committed, whatever the broker does.
            from squidmesh.models import OutboxMessage

            message = OutboxMessage.objects.create(
                run_id=work.run_id,
                workflow=work.workflow,
                step=work.step,
                attempt=work.attempt,
                timeout=work.timeout,
                cluster=settings.CLUSTER,
                due_at=work.due or timezone.now(),
            )
            return f"outbox:{message.pk}"
        # Sync mode runs the task inline in the caller: only once the state
        # change is durable, and without its delay (check W003 warns).
        transaction.on_commit(lambda: self._enqueue(work), robust=False)
        return None

    def send(self, work: Dispatch, broker: Any = None) -> str:
        """Enqueue `work` on the broker now (the relay, once `work` is due), through `broker` if given."""
        from django_q.tasks import async_task

        options = self._options(work)
        if broker is not None:
            options["broker"] = broker
        task_id: str = async_task(
            EXECUTE_STEP, work.run_id, work.step, work.attempt, q_options=options
        )
        return task_id

    def hand_over(self, work: Dispatch, row_id: int) -> str | None:
        """Rewrite queue row `row_id`, held by this worker, to carry `work`, leased anew.

        Used to continue a run inline: the worker runs `work` itself, and
        if it dies the row is redelivered once its lease (`Q_CLUSTER['retry']`)
        ends, like any task pulled by a worker that died. Return the task
        id, or None when the row cannot carry it (not the transactional ORM
        broker, or the row is gone): then dispatch normally.
        """
        from django_q.conf import Conf
        from django_q.tasks import async_task

        if not self.transactional:
            return None
        options = self._options(work)
        cluster = settings.CLUSTER or Conf.CLUSTER_NAME
        lease_until = timezone.now() + timedelta(seconds=Conf.RETRY)
        broker = _leased_orm_broker_class()(cluster, row_id, lease_until)
        options["broker"] = broker
        task_id = async_task(EXECUTE_STEP, work.run_id, work.step, work.attempt, q_options=options)
        return task_id if broker.rewritten else None

    def _options(self, work: Dispatch) -> dict[str, Any]:
        options: dict[str, Any] = {"task_name": work.task_name}
        if settings.CLUSTER:
            options["cluster"] = settings.CLUSTER
        if work.timeout:
            # The worker's SIGALRM takes whole seconds.
            options["timeout"] = math.ceil(work.timeout)
        return options

    def _enqueue(self, work: Dispatch) -> str:
        from django_q.conf import Conf
        from django_q.tasks import async_task

        options = self._options(work)
        delayed = work.due is not None and work.due > timezone.now()
        if delayed and not Conf.SYNC:
            options["broker"] = _delayed_orm_broker_class()(
                settings.CLUSTER or Conf.CLUSTER_NAME, work.due
            )
        task_id: str = async_task(
            EXECUTE_STEP, work.run_id, work.step, work.attempt, q_options=options
        )
        return task_id


def _uses_orm_broker() -> bool:
    """Return whether `get_broker()` gives django-q2's ORM broker (its precedence order)."""
    from django_q.conf import Conf

    if Conf.BROKER_CLASS:
        from django.utils.module_loading import import_string
        from django_q.brokers.orm import ORM

        return issubclass(import_string(Conf.BROKER_CLASS), ORM)
    return bool(Conf.ORM and not Conf.IRON_MQ and not isinstance(Conf.SQS, dict))


@functools.cache
def _delayed_orm_broker_class() -> type:
    # Built lazily: django_q.brokers.orm imports models, which needs the app registry.
    from django_q.brokers.orm import ORM
    from django_q.models import OrmQ

    class DelayedOrmBroker(ORM):  # type: ignore[misc]  # django_q ships no types
        """An ORM broker whose enqueue is invisible to clusters until `not_before`."""

        def __init__(self, list_key: str, not_before: datetime):
            super().__init__(list_key=list_key)
            self.not_before = not_before

        def enqueue(self, task: str) -> int:
            from django_q.conf import Conf

            # `lock` is django-q2's "no cluster may pull before"; dequeue
            # selects rows with lock < now.
            package = OrmQ.objects.using(Conf.ORM).create(
                key=self.list_key, payload=task, lock=self.not_before
            )
            row_id: int = package.pk
            return row_id

    return DelayedOrmBroker


@functools.cache
def _leased_orm_broker_class() -> type:
    from django_q.brokers.orm import ORM
    from django_q.models import OrmQ

    class LeasedOrmBroker(ORM):  # type: ignore[misc]  # django_q ships no types
        """An ORM broker whose enqueue rewrites a row this worker holds instead of adding one."""

        def __init__(self, list_key: str, row_id: int, lease_until: datetime):
            super().__init__(list_key=list_key)
            self.row_id = row_id
            self.lease_until = lease_until
            self.rewritten = False

        def enqueue(self, task: str) -> int:
            from django_q.conf import Conf

            # `lock` in the future keeps every cluster off the row until the
            # lease ends, exactly as after a pull by django-q2's pusher.
            self.rewritten = bool(
                OrmQ.objects.using(Conf.ORM)
                .filter(pk=self.row_id, key=self.list_key)
                .update(payload=task, lock=self.lease_until)
            )
            return self.row_id

    return LeasedOrmBroker


_dispatcher: Dispatcher | None = None


def get_dispatcher() -> Dispatcher:
    """Return the dispatcher named by `SQUIDMESH['DISPATCHER']`."""
    dispatcher_class = settings.DISPATCHER
    global _dispatcher
    if not isinstance(_dispatcher, dispatcher_class):
        _dispatcher = dispatcher_class()
    return _dispatcher
