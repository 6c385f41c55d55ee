"""squidmesh: durable, code-defined workflows for Django, executed on django-q2.

The API functions are imported lazily so that `import squidmesh` (in a
`workflows.py` or in settings) never loads models before the app registry.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from squidmesh.exceptions import (
    InvalidFilter,
    InvalidPayload,
    InvalidTransition,
    RunNotFound,
    SquidmeshError,
    StepFailure,
    TerminalFailure,
    UnknownTrigger,
    UnknownWorkflow,
    WorkflowDefinitionError,
)
from squidmesh.registry import register, registry
from squidmesh.workflow import (
    COMPLETE,
    TODAY,
    Payload,
    Retry,
    Step,
    Workflow,
    cron,
    fields,
    log,
    manual,
    wait,
)

if TYPE_CHECKING:
    from squidmesh.api import cancel_run, inspect_run, list_runs, replay_run, start_run
    from squidmesh.recovery import recover_runs

__version__ = "0.1.0"

__all__ = [
    "COMPLETE",
    "TODAY",
    "InvalidFilter",
    "InvalidPayload",
    "InvalidTransition",
    "Payload",
    "Retry",
    "RunNotFound",
    "SquidmeshError",
    "Step",
    "StepFailure",
    "TerminalFailure",
    "UnknownTrigger",
    "UnknownWorkflow",
    "Workflow",
    "WorkflowDefinitionError",
    "cancel_run",
    "cron",
    "fields",
    "inspect_run",
    "list_runs",
    "log",
    "manual",
    "recover_runs",
    "register",
    "registry",
    "replay_run",
    "start_run",
    "wait",
]

_API = {"cancel_run", "inspect_run", "list_runs", "replay_run", "start_run"}
_RECOVERY = {"recover_runs"}


def __getattr__(name: str) -> Any:
    if name in _API or name in _RECOVERY:
        from django.apps import apps

        if not apps.ready:
            raise RuntimeError(
                f"squidmesh.{name}() was called before Django finished loading apps. "
                "Call it after django.setup() (e.g. from a view, a command or a task), "
                "not at import time of a models.py or workflows.py."
            )
        module = "squidmesh.api" if name in _API else "squidmesh.recovery"
        return getattr(import_module(module), name)
    raise AttributeError(f"module 'squidmesh' has no attribute {name!r}")
