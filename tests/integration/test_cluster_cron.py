"""A cron trigger fired by a real `qcluster`'s own scheduler (it looks every ~30 s)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from squidmesh.cron_schedules import sync_schedules
from squidmesh.cron_schedules.schedule_rows import schedule_name
from squidmesh.models import WorkflowRun
from squidmesh.testing import wait_for, wait_for_run

pytestmark = pytest.mark.cluster


def test_due_schedule__the_clusters_scheduler_starts_one_run_that_completes(cluster):
    sync_schedules()
    name = schedule_name("shop.daily_report", "nightly")
    intended = (timezone.now() - timedelta(minutes=1)).replace(microsecond=0)
    assert Schedule.objects.filter(name=name).update(next_run=intended) == 1
    # django-q2's sentinel runs the scheduler 30 s after start, then every 30 s.
    run = wait_for(lambda: WorkflowRun.objects.filter(workflow="shop.daily_report").first(), 75)
    done = wait_for_run(run.pk, timeout=30)
    assert done.status == "completed"
    assert done.trigger == "nightly"
    assert done.context["cron"]["intended_at"] == intended.isoformat().replace("+00:00", "Z")
    assert done.context["shipped_orders"] == 0
    assert WorkflowRun.objects.filter(workflow="shop.daily_report").count() == 1
    # Re-armed for the next 06:00 in Paris, not 06:00 in the cluster's UTC.
    next_run = Schedule.objects.get(name=name).next_run
    assert next_run > timezone.now()
    assert next_run.hour in (4, 5)
