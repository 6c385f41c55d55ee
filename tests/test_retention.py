"""Retention: finished runs older than the cutoff go with their history; nothing else does."""

import json
import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from django.test import override_settings
from django.utils import timezone
from django_q.models import Schedule

import squidmesh
from squidmesh.lifecycle import RunStatus
from squidmesh.models import CronTickFailure, StepAttempt, StepRun, WorkflowRun
from squidmesh.retention import (
    PRUNE,
    SCHEDULE_NAME,
    prune_runs,
    scheduled_prune,
    sync_prune_schedule,
)
from squidmesh.testing import drain

pytestmark = pytest.mark.django_db(transaction=True)

MONTH = timedelta(days=30)


def finished_run(days_ago, workflow="tests.three_steps"):
    """A completed run with three step runs and three attempts, finished `days_ago`."""
    run = squidmesh.start_run(workflow, {})
    drain()
    finished = timezone.now() - timedelta(days=days_ago)
    WorkflowRun.objects.filter(pk=run.pk).update(
        created_at=finished - timedelta(minutes=1), finished_at=finished
    )
    return WorkflowRun.objects.get(pk=run.pk)


def tick_failure(days_ago, workflow="shop.daily_report"):
    moment = timezone.now() - timedelta(days=days_ago)
    return CronTickFailure.objects.create(
        workflow=workflow, trigger="nightly", intended_at=moment, occurred_at=moment, error={}
    )


def test_prune__deletes_old_finished_runs_with_their_steps_and_attempts():
    old, recent = finished_run(40), finished_run(5)
    assert old.status == RunStatus.COMPLETED

    pruned = prune_runs(MONTH)

    assert (pruned.runs, pruned.step_runs, pruned.attempts) == (1, 3, 3)
    assert list(WorkflowRun.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not StepRun.objects.filter(run_id=old.pk).exists()
    assert not StepAttempt.objects.filter(run_id=old.pk).exists()
    assert StepAttempt.objects.filter(run_id=recent.pk).count() == 3


def test_prune__never_touches_active_runs_however_old():
    waiting = squidmesh.start_run("tests.waiting", {})
    drain()  # `before` done; the run sits in its wait
    long_ago = timezone.now() - timedelta(days=400)
    WorkflowRun.objects.filter(pk=waiting.pk).update(created_at=long_ago, updated_at=long_ago)

    assert prune_runs(MONTH).runs == 0
    assert WorkflowRun.objects.get(pk=waiting.pk).status == RunStatus.RUNNING


def test_prune__failed_and_cancelled_runs_go_too():
    squidmesh.start_run("tests.flaky", {"fail_times": 9, "terminal": True})
    cancelled = squidmesh.start_run("tests.three_steps", {})
    squidmesh.cancel_run(cancelled.pk)
    drain()
    assert sorted(WorkflowRun.objects.values_list("status", flat=True)) == [
        "cancelled",
        "failed",
    ]
    long_ago = timezone.now() - timedelta(days=90)
    WorkflowRun.objects.update(created_at=long_ago, finished_at=long_ago)

    assert prune_runs(MONTH).runs == 2
    assert not WorkflowRun.objects.exists()


def test_prune__replays_of_a_deleted_run_survive_without_the_link():
    source = finished_run(40)
    replay = squidmesh.replay_run(source.pk)
    drain()

    prune_runs(MONTH)

    assert WorkflowRun.objects.get(pk=replay.pk).replayed_from_id is None


def test_prune__by_workflow_and_failed_cron_ticks():
    finished_run(40)
    other = finished_run(40, workflow="tests.flaky")
    tick_failure(40), tick_failure(40, workflow="shop.other"), tick_failure(1)

    pruned = prune_runs(MONTH, workflow="tests.flaky")

    assert (pruned.runs, pruned.cron_tick_failures) == (1, 0)
    assert not WorkflowRun.objects.filter(pk=other.pk).exists()
    assert WorkflowRun.objects.count() == 1
    assert prune_runs(MONTH).cron_tick_failures == 2
    assert CronTickFailure.objects.count() == 1


def test_prune__a_run_created_long_ago_but_finished_recently_stays():
    run = finished_run(1)
    WorkflowRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=90))

    assert prune_runs(MONTH).runs == 0
    assert WorkflowRun.objects.filter(pk=run.pk).exists()


def test_prune__in_batches_deletes_every_expired_run():
    runs = [finished_run(days) for days in (50, 60, 40, 70, 45)]

    pruned = prune_runs(MONTH, batch_size=2)

    assert pruned.runs == 5 and pruned.attempts == 15
    assert not WorkflowRun.objects.filter(pk__in=[r.pk for r in runs]).exists()


def test_dry_run__counts_without_deleting():
    finished_run(40), finished_run(41), finished_run(1)
    tick_failure(40)

    pruned = prune_runs(MONTH, dry_run=True)

    assert (pruned.runs, pruned.step_runs, pruned.attempts, pruned.cron_tick_failures) == (
        2,
        6,
        6,
        1,
    )
    assert pruned.summary().startswith("would delete 2 run(s), 6 step run(s), 6 attempt(s)")
    assert WorkflowRun.objects.count() == 3 and CronTickFailure.objects.count() == 1


@pytest.mark.parametrize(
    ("older_than", "batch_size"), [(timedelta(0), 10), (-MONTH, 10), (MONTH, 0)]
)
def test_prune__refuses_a_non_positive_cutoff_or_batch(older_than, batch_size):
    finished_run(40)
    with pytest.raises(ValueError):
        prune_runs(older_than, batch_size=batch_size)
    assert WorkflowRun.objects.count() == 1


@pytest.mark.postgres
def test_prune__skips_a_run_being_replayed_and_the_replay_keeps_its_source():
    source = finished_run(40)
    locked, release = threading.Event(), threading.Event()

    def replaying():
        # Holds the source's row lock as replay_run does until its commit.
        try:
            with transaction.atomic():
                WorkflowRun.objects.select_for_update(no_key=True).get(pk=source.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=replaying)
    holder.start()
    locked.wait(10)
    try:
        assert prune_runs(MONTH).runs == 0
    finally:
        release.set()
        holder.join(10)
    assert WorkflowRun.objects.filter(pk=source.pk).exists()
    assert prune_runs(MONTH).runs == 1


# -- schedule and command ----------------------------------------------------


def test_schedule__daily_while_the_setting_is_on():
    assert sync_prune_schedule() == "unchanged"  # off by default
    with override_settings(SQUIDMESH={"PRUNE_AFTER_DAYS": 30}):
        assert sync_prune_schedule() == "created"
        assert sync_prune_schedule() == "unchanged"
        schedule = Schedule.objects.get(name=SCHEDULE_NAME)
        assert (schedule.func, schedule.schedule_type) == (PRUNE, Schedule.DAILY)
        finished_run(40), finished_run(3)
        assert scheduled_prune().startswith("deleted 1 run(s)")
    assert sync_prune_schedule() == "removed"
    assert scheduled_prune().startswith("pruning is off")


def test_command__prunes_and_reports(capsys):
    finished_run(40)

    call_command("squidmesh", "prune", "--older-than", "30")

    out = capsys.readouterr().out
    assert out.startswith("Deleted 1 run(s), 3 step run(s), 3 attempt(s)")
    assert not WorkflowRun.objects.exists()


def test_command__dry_run_as_json(capsys):
    finished_run(40)

    call_command("squidmesh", "prune", "--older-than", "0.5", "--dry-run", "--json")

    body = json.loads(capsys.readouterr().out)
    assert {k: body[k] for k in ("dry_run", "runs", "step_runs", "attempts")} == {
        "dry_run": True,
        "runs": 1,
        "step_runs": 3,
        "attempts": 3,
    }
    assert WorkflowRun.objects.count() == 1


@pytest.mark.parametrize("days", ["0", "-3", "forever"])
def test_command__bad_age_is_refused(days):
    with pytest.raises(CommandError, match="expected a positive number of days"):
        call_command("squidmesh", "prune", "--older-than", days)


def test_check__prune_setting_must_be_positive_days():
    from django.core import checks

    with override_settings(SQUIDMESH={"PRUNE_AFTER_DAYS": 0}):
        messages = [m.msg for m in checks.run_checks(tags=["squidmesh"])]
    assert "SQUIDMESH['PRUNE_AFTER_DAYS'] must be a positive number of days or None, got 0." in (
        messages
    )
