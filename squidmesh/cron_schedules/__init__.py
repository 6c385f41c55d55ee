"""Cron triggers on django-q2 schedules.

- `schedule_rows`: what makes a schedule squidmesh's (func, name, kwargs) and the activation settings;
- `planner`: `sync_schedules()`, making the schedules match the registered cron triggers;
- `ticks`: `fire()`, the task each schedule calls, which starts one run per tick;
- `read_model`: `cron_triggers()`, what operators see (admin, REST, `squidmesh_cron list`);
- `receivers`: the `post_migrate` / `pre_save` receivers, connected in `SquidmeshConfig.ready()`.

Schedule rows store the dotted path `squidmesh.schedules.fire`, so that
module stays as a shim re-exporting `fire`.
"""

from squidmesh.cron_schedules.planner import SyncResult, sync_schedules
from squidmesh.cron_schedules.read_model import CronTriggerInfo, cron_triggers
from squidmesh.cron_schedules.schedule_rows import CONTEXT_KEY, activation_setting, is_activated
from squidmesh.cron_schedules.ticks import fire

__all__ = [
    "CONTEXT_KEY",
    "CronTriggerInfo",
    "SyncResult",
    "activation_setting",
    "cron_triggers",
    "fire",
    "is_activated",
    "sync_schedules",
]
