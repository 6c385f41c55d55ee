"""Measure cron activation at scale: sync, one scheduler batch, ticks to runs, `cron_triggers()`.

Run against a throwaway database (it deletes squidmesh schedules, queue rows and runs):

    createdb -h 127.0.0.1 -U root sm_cron_bench
    cd example_project && DATABASE_URL=postgres://root@127.0.0.1:5432/sm_cron_bench \
        python manage.py migrate -v0 && DATABASE_URL=postgres://root@127.0.0.1:5432/sm_cron_bench \
        DJANGO_SETTINGS_MODULE=example.settings PYTHONPATH=. python ../benchmarks/cron_schedules.py
"""

import logging
import time
from datetime import timedelta

import django

django.setup()
logging.disable(logging.WARNING)  # django-q2 logs every enqueue at INFO

from django.db import connection, reset_queries  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_q.brokers import get_broker  # noqa: E402
from django_q.models import OrmQ, Schedule  # noqa: E402
from django_q.scheduler import scheduler  # noqa: E402

import squidmesh  # noqa: E402
from squidmesh import Step, fields  # noqa: E402
from squidmesh.cron_schedules import cron_triggers, sync_schedules  # noqa: E402
from squidmesh.cron_schedules.schedule_rows import FIRE  # noqa: E402
from squidmesh.models import WorkflowRun  # noqa: E402
from squidmesh.registry import registry  # noqa: E402
from squidmesh.testing import drain  # noqa: E402

TRIGGERS = 200
ZONES = ["UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York"]


def noop(data, ctx):
    return {}


def timed(label, action):
    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = action()
        elapsed = time.perf_counter() - started
    print(f"{label}: {elapsed * 1000:.0f} ms, {len(queries)} queries")
    return result


def make_all_due():
    Schedule.objects.filter(func=FIRE).update(next_run=timezone.now() - timedelta(minutes=1))


for number in range(TRIGGERS):
    registry.register(
        type(
            f"Bench{number}",
            (squidmesh.Workflow,),
            {
                "__module__": "bench",
                "name": f"bench.w{number}",
                "triggers": [
                    squidmesh.cron(
                        f"{number % 60} * * * *",
                        name="tick",
                        timezone=ZONES[number % len(ZONES)],
                        payload={"n": fields.Integer(default=number)},
                    )
                ],
                "a": Step(noop),
            },
        )
    )
Schedule.objects.filter(func=FIRE).delete()
OrmQ.objects.all().delete()
WorkflowRun.objects.all().delete()

print(" ", timed("sync, creating", sync_schedules).summary())
print(" ", timed("sync, nothing to do", sync_schedules).summary())
make_all_due()
timed("scheduler() batch of every squidmesh schedule, all due", lambda: scheduler(get_broker()))
print("  ticks queued:", OrmQ.objects.count())
started = time.perf_counter()
executed = drain()
print(
    f"drain: {executed} tasks in {time.perf_counter() - started:.2f} s; runs "
    f"{WorkflowRun.objects.count()}, completed {WorkflowRun.objects.filter(status='completed').count()}"
)
make_all_due()
scheduler(get_broker())
drain()
print("runs after a second round of ticks:", WorkflowRun.objects.count())
infos = timed("cron_triggers(runs=5)", lambda: cron_triggers(runs=5))
print(
    "  states:",
    sorted({info.state for info in infos}),
    "runs listed:",
    sum(len(i.last_runs) for i in infos),
)
late = Schedule.objects.filter(func=FIRE, next_run__lte=timezone.now()).count()
print("  schedules not re-armed into the future:", late)
