"""squidmesh: durable, code-defined workflows for Django, executed on django-q2.

The API functions are imported lazily so that `import squidmesh` (in a
`workflows.py` or in settings) never loads models before the app registry.
Looked up before Django is ready (`from squidmesh import start_run` at the
top of a `workflows.py`), they are thin functions that load the real one, and
check that Django is ready, only when called.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from squidmesh.exceptions import (
    InvalidArgument,
    InvalidFilter,
    InvalidIdempotencyKey,
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
from squidmesh.lifecycle import RunStatus
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
    "InvalidArgument",
    "InvalidFilter",
    "InvalidIdempotencyKey",
    "InvalidPayload",
    "InvalidTransition",
    "Payload",
    "Retry",
    "RunNotFound",
    "RunStatus",
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

_LAZY = {
    "cancel_run": "squidmesh.api",
    "inspect_run": "squidmesh.api",
    "list_runs": "squidmesh.api",
    "replay_run": "squidmesh.api",
    "start_run": "squidmesh.api",
    "recover_runs": "squidmesh.recovery",
}


def _deferred(name: str, module: str) -> Callable[..., Any]:
    """Return a function that imports `module.name` and calls it, once Django is ready.

    Looking the name up (`from squidmesh import start_run` in a
    `workflows.py`, `hasattr(squidmesh, "start_run")`) must work before
    `django.setup()` finishes; only a call needs the models.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        from django.apps import apps

        if not apps.ready:
            raise RuntimeError(
                f"squidmesh.{name}() was called before Django finished loading apps. "
                "Call it after django.setup() (e.g. from a view, a command or a task), "
                "not at import time of a models.py or workflows.py."
            )
        return getattr(import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__module__ = __name__
    call.__doc__ = f"Call `{module}.{name}` (see its documentation) once Django is ready."
    return call


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from django.apps import apps

        if apps.ready:
            # The function itself: its signature and docs, and `is` holds.
            return getattr(import_module(_LAZY[name]), name)
        return _deferred(name, _LAZY[name])
    raise AttributeError(f"module 'squidmesh' has no attribute {name!r}")
