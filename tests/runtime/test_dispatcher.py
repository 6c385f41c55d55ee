from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ, Schedule

import squidmesh
from squidmesh.models import WorkflowRun
from squidmesh.runtime.dispatcher import Dispatch, DjangoQDispatcher

pytestmark = pytest.mark.django_db(transaction=True)


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


@pytest.mark.redis
def test_other_broker__enqueues_only_after_commit(redis_broker):
    dispatcher = DjangoQDispatcher()
    assert not dispatcher.transactional
    with transaction.atomic():
        run = squidmesh.start_run("tests.three_steps", {})
        assert redis_broker.queue_size() == 0
    assert redis_broker.queue_size() == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        squidmesh.start_run("tests.three_steps", {})
        raise RuntimeError("rolled back")
    assert redis_broker.queue_size() == 1
    assert WorkflowRun.objects.get().pk == run.pk


@pytest.mark.redis
def test_other_broker__delayed_dispatch_falls_back_to_a_once_schedule(redis_broker):
    due = timezone.now() + timedelta(seconds=5)
    with transaction.atomic():
        DjangoQDispatcher().dispatch(
            Dispatch(run_id="r", workflow="w", step="s", attempt=1, due=due)
        )
    schedule = Schedule.objects.get(func="squidmesh.runtime.executor.execute_step")
    assert schedule.schedule_type == Schedule.ONCE
    assert schedule.func == "squidmesh.runtime.executor.execute_step"
    assert schedule.next_run == due
    assert redis_broker.queue_size() == 0
