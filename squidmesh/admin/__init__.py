"""Django admin for squidmesh: read-only runs, cancel/replay through the API, workflow diagrams."""

from squidmesh.admin.cron import CronTickFailureAdmin
from squidmesh.admin.runs import WorkflowRunAdmin

__all__ = ["CronTickFailureAdmin", "WorkflowRunAdmin"]
