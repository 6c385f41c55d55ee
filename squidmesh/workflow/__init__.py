"""The workflow DSL: `Workflow`, triggers, payload fields and steps."""

from squidmesh.workflow import fields
from squidmesh.workflow.base import Workflow
from squidmesh.workflow.fields import TODAY, Payload
from squidmesh.workflow.steps import COMPLETE, Log, Retry, Step, Wait, log, wait
from squidmesh.workflow.triggers import CronTrigger, ManualTrigger, Trigger, cron, manual

__all__ = [
    "COMPLETE",
    "TODAY",
    "CronTrigger",
    "Log",
    "ManualTrigger",
    "Payload",
    "Retry",
    "Step",
    "Trigger",
    "Wait",
    "Workflow",
    "cron",
    "fields",
    "log",
    "manual",
    "wait",
]
