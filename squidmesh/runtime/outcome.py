"""What a step body's attempt came to: its output, or an error and whether to retry it."""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError, connection

from squidmesh.conf import settings
from squidmesh.exceptions import StepFailure
from squidmesh.runtime.context import StepContext
from squidmesh.workflow.fields import storage_problem
from squidmesh.workflow.steps import Step

__all__ = ["StepOutcome", "check_output", "database_lost", "first_line", "run_step_body"]


@dataclass(frozen=True)
class StepOutcome:
    """The outcome of one step body: `output` if it succeeded, else `error`.

    `retryable` says whether the step's retry policy may run it again;
    `interrupted` that the body was cut off by something outside the step
    (the database went away), which neither spends a retry nor waits.
    """

    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    retryable: bool = False
    interrupted: bool = False

    @property
    def succeeded(self) -> bool:
        return self.error is None

    @classmethod
    def success(cls, output: dict[str, Any]) -> StepOutcome:
        return cls(output=output)

    @classmethod
    def failure(cls, error: dict[str, Any], *, retryable: bool) -> StepOutcome:
        return cls(error=error, retryable=retryable)

    @classmethod
    def from_exception(cls, error: BaseException) -> StepOutcome:
        """Return the outcome of a body that raised `error` (not a `StepFailure`): retryable."""
        return cls.failure(
            {
                "type": type(error).__name__,
                "message": str(error),
                "traceback": traceback.format_exc(limit=20),
            },
            retryable=True,
        )

    @classmethod
    def database_lost(cls, error: BaseException) -> StepOutcome:
        message = f"database connection lost during the attempt: {first_line(error)}"
        return cls(
            error={"type": "Interrupted", "message": message, "retryable": True},
            retryable=True,
            interrupted=True,
        )


def run_step_body(step: Step, data: dict[str, Any], ctx: StepContext) -> StepOutcome:
    """Run the body of `step` with `data` (payload + context) outside any transaction."""
    from django_q.exceptions import TimeoutException

    with ctx:
        try:
            output = step.execute(data, ctx)
        except StepFailure as failure:
            return StepOutcome.failure(failure.as_error(), retryable=failure.retryable)
        except TimeoutException as timeout:
            # django-q2's alarm for the task timeout; the worker goes on.
            return StepOutcome.failure({"type": "Timeout", "message": str(timeout)}, retryable=True)
        except Exception as error:
            if database_lost(error):
                # The database went away under the body (a restart, a
                # failover): like a killed worker, that says nothing about
                # the step, so it is an interruption, recorded on a new
                # connection.
                connection.close()
                return StepOutcome.database_lost(error)
            ctx.logger.warning("step %s raised %r", ctx.step, error)
            return StepOutcome.from_exception(error)
    return check_output(output)


def check_output(output: Any) -> StepOutcome:
    """Return the outcome of a body that returned `output`: a JSON-ready mapping or None."""
    if output is None:
        return StepOutcome.success({})
    if not isinstance(output, Mapping):
        message = f"step returned {type(output).__name__}, expected a mapping or None"
        return _invalid(message)
    try:
        encoded = json.dumps(output, cls=DjangoJSONEncoder)
    except (TypeError, ValueError) as error:
        return _invalid(f"step output is not JSON-serializable: {error}")
    if len(encoded) > settings.MAX_STEP_OUTPUT_BYTES:
        return _invalid(
            f"step output is {len(encoded)} bytes, over SQUIDMESH['MAX_STEP_OUTPUT_BYTES']"
        )
    decoded = json.loads(encoded)
    # What jsonb refuses would fail the finish transaction on every redelivery.
    problem = storage_problem(decoded)
    if problem:
        return _invalid(f"step output {problem}")
    return StepOutcome.success(decoded)


def _invalid(message: str) -> StepOutcome:
    return StepOutcome.failure({"type": "InvalidStepOutput", "message": message}, retryable=False)


def database_lost(error: Exception) -> bool:
    """Return whether `error` is squidmesh's database connection dropping (not a query error)."""
    if not isinstance(error, OperationalError | InterfaceError) or connection.in_atomic_block:
        return False  # inside a caller's transaction (sync mode) nothing can be recovered
    # A statement timeout or a lock error leaves the connection usable: the
    # step's own failure. A restart or failover leaves it dead.
    return connection.connection is None or not connection.is_usable()


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
