"""What a step receives besides its data: ids, attempt number, a logger."""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepContext", "current_step_context", "install_log_record_factory"]

logger = logging.getLogger("squidmesh.steps")

_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "squidmesh_step_context", default=None
)


@dataclass
class StepContext:
    """The execution context handed to step code as `ctx`."""

    run_id: str
    workflow: str
    trigger: str
    step: str
    attempt: int
    payload: dict[str, Any]
    context: dict[str, Any]
    #: Built-in steps record their marker here (the message of a log step).
    note: dict[str, Any] | None = None
    #: Logger for step code; while the step runs, its records (and those of
    #: any other logger) carry run_id, workflow, step and attempt.
    logger: logging.Logger = field(default=logger, repr=False)

    def log_extra(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "step": self.step,
            "attempt": self.attempt,
        }

    @property
    def idempotency_key(self) -> str:
        """Return `"<run_id>:<step>"`: the same on every attempt of this step.

        Send it with external calls so the receiver can de-duplicate: when an
        attempt dies after its side effect, the next attempt must not do it again.
        """
        return f"{self.run_id}:{self.step}"

    def __enter__(self) -> StepContext:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)


def current_step_context() -> StepContext | None:
    """Return the context of the step executing in this thread, if any."""
    return _current.get()


def install_log_record_factory() -> None:
    """Make every log record created during a step carry run_id/workflow/step/attempt.

    Records from any logger (the step's libraries too) get the attributes,
    so handlers and formatters can use them like `extra`.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "squidmesh", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        ctx = _current.get()
        if ctx is not None:
            for key, value in ctx.log_extra().items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return record

    factory.squidmesh = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
