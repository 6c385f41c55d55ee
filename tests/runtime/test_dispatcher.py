from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from django_q.signing import SignedPackage

import squidmesh
from squidmesh.models import OutboxMessage, WorkflowRun
from squidmesh.runtime.dispatcher import Dispatch, DjangoQDispatcher

pytestmark = pytest.mark.django_db(transaction=True)

RUN_ID = "6f1d0c0e-8a57-4a8e-9a51-0c1c5bb0c3f2"


def test_orm_broker_on_the_same_database__is_transactional():
    assert DjangoQDispatcher().transactional


def test_rollback__removes_both_the_run_and_its_queue_row():
    with pytest.raises(RuntimeError), transaction.atomic():
        squidmesh.start_run("tests.three_steps", {})
        assert OrmQ.objects.count() == 1  # written on the same connection...
        raise RuntimeError("caller's transaction fails after start_run")
    assert WorkflowRun.objects.count() == 0  # ...so it is gone with the run
    assert OrmQ.objects.count() == 0


def test_delayed_dispatch__queue_row_is_invisible_until_due():
    due = timezone.now() + timedelta(seconds=30)
    DjangoQDispatcher().dispatch(
        Dispatch(run_id="r", workflow="w", step="s", attempt=2, due=due, timeout=3)
    )
    row = OrmQ.objects.get()
    assert row.lock == due
    assert row.task["args"] == ("r", "s", 2)
    assert row.task["timeout"] == 3
    # django-q2's ORM dequeue only takes rows with lock < now.
    assert not OrmQ.objects.filter(key=row.key, lock__lt=timezone.now()).exists()


def test_other_broker__writes_an_outbox_message_in_the_callers_transaction(redis_broker):
    dispatcher = DjangoQDispatcher()
    assert not dispatcher.transactional and dispatcher.uses_outbox
    with transaction.atomic():
        run = squidmesh.start_run("tests.three_steps", {})
        assert OutboxMessage.objects.count() == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        squidmesh.start_run("tests.three_steps", {})
        raise RuntimeError("rolled back")
    # The rolled-back start left no message; nothing reached the broker yet.
    message = OutboxMessage.objects.get()
    assert (str(message.run_id), message.step, message.attempt) == (str(run.pk), "a", 1)
    assert redis_broker.queue_size() == 0
    assert WorkflowRun.objects.get().pk == run.pk


def test_other_broker__delayed_dispatch_is_an_outbox_message_due_later(redis_broker):
    due = timezone.now() + timedelta(seconds=5)
    with transaction.atomic():
        job_id = DjangoQDispatcher().dispatch(
            Dispatch(run_id=RUN_ID, workflow="w", step="s", attempt=2, due=due, timeout=2.5)
        )
    message = OutboxMessage.objects.get()
    assert job_id == f"outbox:{message.pk}"
    assert (message.due_at, message.timeout, message.attempt) == (due, 2.5, 2)
    # No django-q2 ONCE schedule (checked only every 30 s) any more.
    assert not Schedule.objects.filter(func="squidmesh.runtime.executor.execute_step").exists()
    assert redis_broker.queue_size() == 0


def test_send__enqueues_with_the_steps_own_timeout(redis_broker):
    DjangoQDispatcher().send(
        Dispatch(run_id=RUN_ID, workflow="w", step="s", attempt=1, timeout=2.5)
    )
    [(_, package)] = redis_broker.dequeue()
    task = SignedPackage.loads(package)
    assert task["args"] == (RUN_ID, "s", 1)
    assert (task["timeout"], task["name"]) == (3, f"{RUN_ID}:s#1")
