"""Run the example workflows end to end through a real qcluster and print their history."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.core.management import BaseCommand, call_command

import squidmesh
from squidmesh.testing import Cluster

EXAMPLE_DIR = Path(__file__).resolve().parents[3]


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=60.0)

    def handle(self, *args, timeout: float, **options):
        call_command("migrate", verbosity=0)
        self.stdout.write("Starting a qcluster (django-q2 worker) …")
        cluster = Cluster(settings_module="example.settings", cwd=EXAMPLE_DIR).start()
        try:
            reference = f"DEMO-{int(time.time())}"
            runs = [
                squidmesh.start_run(
                    "shop.order_fulfilment",
                    {"order_ref": reference, "amount_cents": 4200, "declines": 1},
                ),
                squidmesh.start_run(
                    "shop.order_fulfilment",
                    {"order_ref": f"{reference}-X", "amount_cents": 999, "card": "stolen"},
                    trigger="backoffice",
                ),
                squidmesh.start_run("shop.daily_report", {}, trigger="on_demand"),
            ]
            for run in runs:
                self.stdout.write(f"started {run.workflow} run {run.pk} ({run.trigger})")
            ok = self.follow([run.pk for run in runs], timeout)
        finally:
            cluster.stop()
        for run_id in [run.pk for run in runs]:
            self.print_history(squidmesh.inspect_run(run_id, include_history=True))
        self.stdout.write("\nCron triggers (activated by migrate):")
        call_command("squidmesh_cron", "list")
        self.print_maintenance()
        if not ok:
            self.stderr.write("Runs did not finish in time; cluster log:\n" + cluster.output())
            sys.exit(1)
        self.stdout.write(
            "\nSee these runs in the admin: manage.py createsuperuser, manage.py runserver, "
            "then open http://127.0.0.1:8000/admin/squidmesh/workflowrun/ (docs/admin.md)."
        )

    def print_maintenance(self) -> None:
        from django_q.models import Schedule

        from squidmesh.recovery import SCHEDULE_NAME as RECOVER
        from squidmesh.retention import SCHEDULE_NAME as PRUNE

        self.stdout.write("\nMaintenance schedules (docs/operations.md):")
        for schedule in Schedule.objects.filter(name__in=[RECOVER, PRUNE]).order_by("name"):
            every = (
                f"every {schedule.minutes} min"
                if schedule.schedule_type == Schedule.MINUTES
                else schedule.get_schedule_type_display().lower()
            )
            self.stdout.write(f"  {schedule.name:<20} {every:<14} {schedule.func}")
        self.stdout.write(
            "  Try: manage.py squidmesh recover --dry-run; squidmesh prune --older-than 30 --dry-run"
        )

    def follow(self, run_ids, timeout: float) -> bool:
        """Print each new attempt and status change until every run is terminal."""
        seen: set[tuple] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finished = 0
            for run_id in run_ids:
                run = squidmesh.inspect_run(run_id, include_history=True)
                short = str(run.pk)[:8]
                for step_run in run.history:
                    for attempt in step_run.attempts.all():
                        key = (run.pk, step_run.step, attempt.number, attempt.status)
                        if key not in seen:
                            seen.add(key)
                            error = f" — {attempt.error['message']}" if attempt.error else ""
                            self.stdout.write(
                                f"  [{short}] {step_run.step} attempt {attempt.number}: "
                                f"{attempt.status}{error}"
                            )
                if (run.pk, run.status) not in seen:
                    seen.add((run.pk, run.status))
                    self.stdout.write(f"  [{short}] run is {run.status}")
                finished += run.is_terminal
            if finished == len(run_ids):
                return True
            time.sleep(0.1)
        return False

    def print_history(self, run) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(f"{run.workflow} {run.pk} → {run.status}"))
        self.stdout.write(f"  payload: {run.payload}")
        self.stdout.write(f"  context: {run.context}")
        for step_run in run.history:
            self.stdout.write(f"  {step_run.position}. {step_run.step}: {step_run.status}")
            for attempt in step_run.attempts.all():
                took = (
                    f"{attempt.duration.total_seconds() * 1000:.0f} ms" if attempt.duration else "-"
                )
                error = f"  error: {attempt.error['message']}" if attempt.error else ""
                self.stdout.write(
                    f"       attempt {attempt.number} {attempt.status} "
                    f"at {attempt.started_at:%H:%M:%S.%f} ({took}){error}"
                )
