"""`manage.py squidmesh_cron sync|list`: activate cron triggers and show their schedules."""

from __future__ import annotations

import json
import zoneinfo
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from squidmesh.management.arguments import MAX_RUNS_PER_TRIGGER, integer_between


class Command(BaseCommand):
    help = "Sync the django-q2 schedules of squidmesh cron triggers, or list them."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{sync,list}")
        sync = actions.add_parser("sync", help="Create, update and remove squidmesh schedules.")
        sync.add_argument(
            "--dry-run", action="store_true", help="Print what would change; write nothing."
        )
        listing = actions.add_parser("list", help="Show each cron trigger and its schedule.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        listing.add_argument(
            "--runs",
            type=integer_between(0, MAX_RUNS_PER_TRIGGER),
            default=3,
            help=f"How many recent runs to show per trigger (0 to {MAX_RUNS_PER_TRIGGER}).",
        )
        for action in (sync, listing):
            action.add_argument("--database", default=None, help="Database alias of the schedules.")

    def handle(self, *args: Any, action: str, database: str | None, **options: Any) -> None:
        if database is not None and database not in self._aliases():
            raise CommandError(f"--database: unknown database alias {database!r}.")
        if action == "sync":
            self.sync(database, dry_run=options["dry_run"])
        else:
            self.list(database, runs=options["runs"], as_json=options["json"])

    def _aliases(self) -> set[str]:
        from django.db import connections

        return set(connections) | {DEFAULT_DB_ALIAS}

    def sync(self, database: str | None, *, dry_run: bool) -> None:
        from squidmesh.cron_schedules.planner import sync_schedules

        result = sync_schedules(using=database, dry_run=dry_run)
        verb = "would be " if dry_run else ""
        for label in result.created:
            self.stdout.write(f"{verb}created {label}")
        for label in result.updated:
            self.stdout.write(f"{verb}updated {label}")
        for label in result.removed:
            self.stdout.write(f"{verb}removed {label}")
        self.stdout.write(("Dry run: " if dry_run else "") + result.summary() + ".")

    def list(self, database: str | None, *, runs: int, as_json: bool) -> None:
        from squidmesh.cron_schedules.read_model import cron_triggers

        infos = cron_triggers(runs=runs, using=database)
        if as_json:
            self.stdout.write(json.dumps([info.as_dict() for info in infos], indent=2))
            return
        if not infos:
            self.stdout.write("No cron triggers are registered.")
            return
        header = ("WORKFLOW", "TRIGGER", "EXPRESSION", "TIME ZONE", "STATE", "NEXT FIRE TIME")
        rows = [
            (
                info.workflow,
                info.trigger,
                info.expression or "-",
                info.timezone or "-",
                info.state,
                _local(info.next_fire_time, info.timezone),
            )
            for info in infos
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for info, row in zip([None, *infos], [header, *rows], strict=True):
            self.stdout.write(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
            if info is None:
                continue
            for run in info.last_runs:
                self.stdout.write(
                    f"    run {run['id']} {run['status']}"
                    f" (tick {run['intended_at'] or '-'}, created {_utc(run['created_at'])})"
                )
            if info.last_failure:
                error = info.last_failure["error"] or {}
                self.stdout.write(
                    f"    last failure: tick {_utc(info.last_failure['intended_at'])} "
                    f"{error.get('type', '')}: {error.get('message', '')}"
                )


def _utc(moment: datetime | None) -> str:
    from squidmesh.cron_schedules.schedule_rows import utc_iso

    return utc_iso(moment) or "-"


def _local(moment: datetime | None, zone: str | None) -> str:
    if moment is None:
        return "-"
    try:
        local = moment.astimezone(zoneinfo.ZoneInfo(zone or "UTC"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return _utc(moment)
    return f"{local:%Y-%m-%d %H:%M %Z} ({_utc(moment)})"
