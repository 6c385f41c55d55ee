"""The recovery sweep: lost deliveries are queued again, everything else is left alone."""

import json
import os
import signal
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ, Schedule

import squidmesh
from squidmesh.lifecycle import AttemptStatus, RunStatus
from squidmesh.models import StepAttempt, WorkflowRun
from squidmesh.recovery import SCHEDULE_NAME, SWEEP, recover_runs, sync_recovery_schedule
from squidmesh.runtime.relay import Relay
from squidmesh.testing import drain, wait_for, wait_for_run
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def age(run, seconds=600, **changes):
    """Make `run` look untouched for `seconds` (what a lost delivery leaves behind)."""
    WorkflowRun.objects.filter(pk=run.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds), **changes
    )


def lose_queued_work():
    OrmQ.objects.all().delete()


def attempts(run):
    return list(
        StepAttempt.objects.filter(run_id=run.pk)
        .order_by("step_run__position", "number")
        .values_list("step_run__step", "number", "status")
    )


def test_pending_run_whose_delivery_was_lost__is_redispatched_and_completes():
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    age(run)

    sweep = recover_runs()

    assert [(r.run_id, r.step, r.attempt, r.redispatched) for r in sweep.runs] == [
        (str(run.pk), "a", 1, True)
    ]
    assert OrmQ.objects.count() == 1
    drain()
    assert squidmesh.inspect_run(run.pk).status == RunStatus.COMPLETED


def test_run_that_made_progress_recently__is_not_a_candidate():
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()

    assert recover_runs().runs == []
    assert recover_runs(older_than=600).runs == []
    assert OrmQ.objects.count() == 0
    assert WorkflowRun.objects.get(pk=run.pk).updated_at == run.updated_at


def test_redispatch__moves_updated_at_so_the_next_sweep_leaves_the_run_alone():
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    age(run)

    assert len(recover_runs().redispatched) == 1
    assert recover_runs().runs == []
    assert OrmQ.objects.count() == 1


def test_dry_run__reports_without_queueing_or_writing():
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    age(run)
    before = WorkflowRun.objects.get(pk=run.pk).updated_at

    sweep = recover_runs(dry_run=True)

    assert [(r.attempt, r.redispatched) for r in sweep.runs] == [(1, True)]
    assert sweep.summary() == "1 stale run(s), would redispatch 1"
    assert OrmQ.objects.count() == 0
    assert WorkflowRun.objects.get(pk=run.pk).updated_at == before


def test_retrying_run__gets_its_next_attempt_once_the_backoff_is_overdue():
    run = squidmesh.start_run("tests.flaky", {"fail_times": 1})
    drain()  # attempt 1 fails; attempt 2 is queued behind the backoff
    lose_queued_work()
    run = WorkflowRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.RETRYING and run.scheduled_for is not None

    age(run)  # stale, but the backoff itself is not overdue yet
    age(run, scheduled_for=timezone.now() + timedelta(seconds=30))
    assert recover_runs().runs == []

    age(run, scheduled_for=timezone.now() - timedelta(seconds=600))
    [outcome] = recover_runs().runs
    assert (outcome.status, outcome.attempt, outcome.redispatched) == ("retrying", 2, True)
    drain()
    assert squidmesh.inspect_run(run.pk).status == RunStatus.COMPLETED
    assert attempts(run)[:2] == [("flaky", 1, "failed"), ("flaky", 2, "succeeded")]


def test_attempt_still_running__is_left_to_its_worker():
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    claim_without_finishing(run, started_ago=1)
    age(run)

    [outcome] = recover_runs().runs
    assert not outcome.redispatched
    assert outcome.reason == "attempt 1 is still running"
    assert OrmQ.objects.count() == 0


def test_attempt_of_a_dead_worker__is_redelivered_then_interrupted_and_retried():
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    claim_without_finishing(run, started_ago=3600)
    age(run)

    [outcome] = recover_runs().runs
    assert (outcome.step, outcome.attempt, outcome.redispatched) == ("a", 1, True)
    drain()
    assert squidmesh.inspect_run(run.pk).status == RunStatus.COMPLETED
    assert attempts(run)[:2] == [("a", 1, "interrupted"), ("a", 2, "succeeded")]


def test_cancelling_run_of_a_dead_worker__is_redelivered_and_ends_cancelled():
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    claim_without_finishing(run, started_ago=3600)
    assert squidmesh.cancel_run(run.pk).status == RunStatus.CANCELLING
    age(run)

    assert len(recover_runs().redispatched) == 1
    drain()
    assert squidmesh.inspect_run(run.pk).status == RunStatus.CANCELLED
    assert attempts(run) == [("a", 1, "interrupted")]


def test_run_of_an_unregistered_workflow__is_reported_not_redispatched():
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    age(run, workflow="tests.gone")

    [outcome] = recover_runs().runs
    assert (outcome.redispatched, outcome.reason) == (False, "workflow is not registered")
    assert OrmQ.objects.count() == 0


def test_terminal_runs__are_never_touched():
    done = squidmesh.start_run("tests.three_steps", {})
    drain()
    cancelled = squidmesh.start_run("tests.three_steps", {})
    squidmesh.cancel_run(cancelled.pk)
    lose_queued_work()
    for run in (done, cancelled):
        age(run)

    assert recover_runs().runs == []
    assert OrmQ.objects.count() == 0


def test_queue_backlog_on_the_orm_broker__stands_the_sweep_down():
    run = squidmesh.start_run("tests.three_steps", {})
    age(run)
    # The run's own queue row has waited for a worker longer than the
    # threshold: the cluster is behind (or down), the delivery is not lost.
    OrmQ.objects.update(lock=timezone.now() - timedelta(seconds=900))

    sweep = recover_runs()

    assert sweep.backlog and sweep.runs == []
    assert OrmQ.objects.count() == 1
    assert "queue backlog" in sweep.summary()


def test_limit__bounds_the_runs_looked_at_oldest_first():
    runs = [squidmesh.start_run("tests.three_steps", {}) for _ in range(3)]
    lose_queued_work()
    for seconds, run in zip((900, 700, 800), runs, strict=True):
        age(run, seconds)

    sweep = recover_runs(limit=2)

    assert [r.run_id for r in sweep.runs] == [str(runs[0].pk), str(runs[2].pk)]


def test_sweep_with_nothing_stale__costs_two_queries_whatever_the_history():
    for _ in range(5):
        squidmesh.start_run("tests.three_steps", {})
    drain()
    with CaptureQueriesContext(connection) as queries:
        assert recover_runs().runs == []
    assert len(queries) == 2  # the backlog probe and the candidate read


def test_redispatch_of_one_run__costs_a_constant_number_of_queries():
    def sweep_one(n):
        run = squidmesh.start_run("tests.three_steps", {})
        lose_queued_work()
        age(run)
        with CaptureQueriesContext(connection) as queries:
            assert len(recover_runs().redispatched) == 1
        drain()
        return len(queries)

    assert sweep_one(1) == sweep_one(2) == sweep_one(3)


# -- the schedule ------------------------------------------------------------


def test_schedule__is_created_updated_and_removed_with_the_settings():
    with override_settings(SQUIDMESH={"RECOVERY_INTERVAL": 5}):
        assert sync_recovery_schedule() == "created"
        assert sync_recovery_schedule() == "unchanged"
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (SWEEP, "I", 5)
    with override_settings(SQUIDMESH={"RECOVERY_INTERVAL": 2}):
        assert sync_recovery_schedule() == "updated"
    assert Schedule.objects.get(name=SCHEDULE_NAME).minutes == 2
    with override_settings(SQUIDMESH={"RECOVERY_INTERVAL": None}):
        assert sync_recovery_schedule() == "removed"
        assert sync_recovery_schedule() == "unchanged"
    assert not Schedule.objects.filter(name=SCHEDULE_NAME).exists()


def test_schedule__another_apps_schedule_of_the_same_name_is_not_touched():
    Schedule.objects.create(name=SCHEDULE_NAME, func="other.app.task", minutes=1)
    with override_settings(SQUIDMESH={"RECOVERY_INTERVAL": None}):
        assert sync_recovery_schedule() == "unchanged"
    assert Schedule.objects.filter(func="other.app.task").exists()


def test_migrate__installs_the_default_schedule():
    with override_settings(SQUIDMESH={}):
        call_command("migrate", "squidmesh", verbosity=0)
    assert Schedule.objects.get(name=SCHEDULE_NAME, func=SWEEP).minutes == 1


def test_django_q_scheduler__runs_the_sweep_which_recovers_a_lost_delivery():
    from django_q.brokers import get_broker
    from django_q.scheduler import scheduler
    from django_q.signing import SignedPackage

    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    age(run)
    with override_settings(SQUIDMESH={"RECOVERY_INTERVAL": 1}):
        sync_recovery_schedule()
        scheduler(broker=get_broker())
    [queued] = OrmQ.objects.all()
    task = SignedPackage.loads(queued.payload)
    assert task["func"] == SWEEP
    queued.delete()
    # What a worker does with the scheduled task:
    from squidmesh.recovery import scheduled_sweep

    assert scheduled_sweep() == "1 stale run(s), redispatched 1"
    drain()
    assert squidmesh.inspect_run(run.pk).status == RunStatus.COMPLETED


# -- the command ---------------------------------------------------------------


def test_command__redispatches_and_prints_a_table(capsys):
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    age(run)

    call_command("squidmesh", "recover", "--older-than", "60")

    out = capsys.readouterr().out
    assert str(run.pk) in out and "redispatched" in out
    assert out.strip().endswith("1 stale run(s), redispatched 1.")
    assert OrmQ.objects.count() == 1


def test_command__dry_run_as_json(capsys):
    run = squidmesh.start_run("tests.three_steps", {})
    lose_queued_work()
    age(run)

    call_command("squidmesh", "recover", "--dry-run", "--json")

    body = json.loads(capsys.readouterr().out)
    assert body["dry_run"] is True and body["backlog"] is False
    assert body["runs"] == [
        {
            "run_id": str(run.pk),
            "workflow": "tests.three_steps",
            "status": "pending",
            "step": "a",
            "attempt": 1,
            "redispatched": True,
            "reason": "delivery overdue (dry run: not queued)",
        }
    ]
    assert OrmQ.objects.count() == 0


@pytest.mark.parametrize("args", [["--older-than", "0"], ["--older-than", "soon"]])
def test_command__bad_threshold_is_refused_with_the_reason(args):
    with pytest.raises(CommandError, match="--older-than: expected a positive number of seconds"):
        call_command("squidmesh", "recover", *args)


def test_command__bad_limit_is_refused():
    with pytest.raises(CommandError, match="--limit must be a positive integer"):
        call_command("squidmesh", "recover", "--limit", "0")


# -- Redis: a worker killed mid-step loses its task -------------------------


@pytest.mark.cluster
def test_redis_broker__task_lost_with_a_killed_worker__is_recovered_by_the_sweep(
    redis_broker, new_cluster
):
    new_cluster(SQUIDMESH_TEST_BROKER="redis")
    run = squidmesh.start_run("tests.slow", {"sleep": 60})
    body = wait_for(lambda: Execution.objects.filter(run_id=run.pk).first(), 30)
    os.kill(body.pid, signal.SIGKILL)
    # Redis has no lease: the pulled task is gone. Past the step's timeout
    # plus grace (6 s + 2 s) the attempt is presumed dead, yet nothing comes.
    attempt = StepAttempt.objects.get(run_id=run.pk)
    wait_for(lambda: timezone.now() > attempt.started_at + timedelta(seconds=9), 15)
    assert redis_broker.queue_size() == 0
    assert StepAttempt.objects.get(pk=attempt.pk).status == AttemptStatus.RUNNING

    [outcome] = recover_runs(older_than=1).runs

    assert (outcome.attempt, outcome.redispatched) == (1, True)
    done = wait_for_run(run.pk, timeout=60)
    assert done.status == RunStatus.COMPLETED
    assert attempts(done) == [
        ("slow", 1, "interrupted"),
        ("slow", 2, "succeeded"),
        ("after", 1, "succeeded"),
    ]


def test_redis_broker__task_lost_from_the_queue__is_recovered(redis_broker):
    run = squidmesh.start_run("tests.three_steps", {})
    assert Relay().relay_once().handed_over == 1
    redis_broker.purge_queue()  # e.g. a FLUSHDB
    age(run)

    assert len(recover_runs().redispatched) == 1
    assert Relay().relay_once().handed_over == 1
    assert redis_broker.queue_size() == 1
    assert recover_runs().runs == []


# -- helpers -------------------------------------------------------------------


def claim_without_finishing(run, *, started_ago):
    """Record attempt 1 of the entry step as `running`, as a worker that died mid-step leaves it."""
    from squidmesh.runtime.executor import StepExecutor

    executor = StepExecutor(str(run.pk), "a", 1)
    claim = executor._claim()
    StepAttempt.objects.filter(pk=claim.attempt.pk).update(
        started_at=timezone.now() - timedelta(seconds=started_ago)
    )


def test_recover_runs__is_part_of_the_public_api():
    assert "recover_runs" in squidmesh.__all__
    assert squidmesh.recover_runs is recover_runs
