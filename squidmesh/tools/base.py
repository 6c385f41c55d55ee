"""The tool boundary: the adapter contract, `invoke()`, normalized results and errors."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from squidmesh.exceptions import StepFailure, TerminalFailure

__all__ = ["Adapter", "ToolContext", "ToolError", "ToolResult", "invoke"]

logger = logging.getLogger("squidmesh.tools")


@dataclass(frozen=True)
class ToolResult:
    """A successful tool call: which adapter, its normalized payload, and call metadata.

    `payload` and `metadata` are JSON-ready, so a step can return parts of
    them as its output.
    """

    adapter: str
    payload: Any
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a plain, JSON-ready mapping."""
        return {"adapter": self.adapter, "payload": self.payload, "metadata": dict(self.metadata)}


class ToolError(StepFailure):
    """A failed tool call, normalized: adapter, kind, message, details, retryable.

    It is a `StepFailure`: raised out of a step (or converted with
    `as_step_failure()`), a retryable tool error follows the step's retry
    policy and a non-retryable one fails the step without further attempts.
    """

    def __init__(
        self,
        adapter: str,
        kind: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        retryable: bool = False,
    ):
        # An adapter that learns when to come back (HTTP `Retry-After`)
        # puts it in `details["retry_after"]`; the engine waits at least that.
        retry_after = (details or {}).get("retry_after")
        super().__init__(
            message,
            details=details,
            retryable=retryable,
            retry_after=retry_after if isinstance(retry_after, int | float) else None,
        )
        self.adapter = adapter
        self.kind = kind

    def __reduce__(self) -> tuple[Callable[[dict[str, Any]], ToolError], tuple[dict[str, Any]]]:
        return _rebuild_tool_error, (self.to_dict(),)

    def __repr__(self) -> str:
        return (
            f"ToolError(adapter={self.adapter!r}, kind={self.kind!r}, "
            f"message={self.message!r}, retryable={self.retryable})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the error as a plain, JSON-ready mapping."""
        return {
            "adapter": self.adapter,
            "kind": self.kind,
            "message": self.message,
            "details": dict(self.details),
            "retryable": self.retryable,
        }

    def as_step_failure(self) -> StepFailure:
        """Return the step failure the engine records for this error.

        A retryable error becomes a (retryable) `StepFailure`, any other a
        `TerminalFailure`; either carries `to_dict()` as its details.
        """
        if self.retryable:
            return StepFailure(
                self.message, details=self.to_dict(), retryable=True, retry_after=self.retry_after
            )
        return TerminalFailure(self.message, details=self.to_dict())

    def as_error(self) -> dict[str, Any]:
        # What the executor records when a step lets the error propagate:
        # the same as for an explicit `raise error.as_step_failure()`.
        return self.as_step_failure().as_error()


def _rebuild_tool_error(state: dict[str, Any]) -> ToolError:
    return ToolError(
        state["adapter"],
        state["kind"],
        state["message"],
        details=state["details"],
        retryable=state["retryable"],
    )


@dataclass(frozen=True)
class ToolContext:
    """Who is calling: the run, workflow, step and attempt (each None outside a step)."""

    run_id: str | None = None
    workflow: str | None = None
    step: str | None = None
    attempt: int | None = None

    @property
    def idempotency_key(self) -> str | None:
        """Return `run_id:step`, the same for every attempt of the step; None outside a step.

        Retries must reuse the key, so that a call that did go through
        before its response was lost is not carried out twice. (The per
        attempt key is `StepContext.idempotency_key`.)
        """
        if self.run_id is None or self.step is None:
            return None
        return f"{self.run_id}:{self.step}"

    @classmethod
    def from_value(cls, value: Any) -> ToolContext:
        """Build a context from a `StepContext`, a mapping, a `ToolContext` or None.

        None means the step executing in this thread, if any. Raise
        `ValueError` for anything else.
        """
        from squidmesh.runtime.context import StepContext, current_step_context

        if isinstance(value, ToolContext):
            return value
        if value is None:
            value = current_step_context()
            if value is None:
                return cls()
        if isinstance(value, StepContext):
            return cls(value.run_id, value.workflow, value.step, value.attempt)
        if isinstance(value, Mapping):
            attempt = value.get("attempt")
            if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
                raise ValueError(f"context: attempt must be an integer, not {attempt!r}")
            strings = {}
            for key in ("run_id", "workflow", "step"):
                item = value.get(key)
                strings[key] = None if item is None else str(item)
            return cls(attempt=attempt, **strings)
        raise ValueError(
            f"context must be a step context, a mapping or None, not {type(value).__name__}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "step": self.step,
            "attempt": self.attempt,
        }


class Adapter:
    """Base class of tool adapters.

    Subclasses set `name` and implement `call(request, context)`: return a
    `ToolResult` (build it with `self.result(...)`) or raise a `ToolError`
    (build it with `self.error(...)`). `call` makes at most one call to the
    external system and never retries: retries belong to the step's policy.
    """

    #: Short, stable identifier recorded in results and errors.
    name: str = ""

    def call(self, request: Any, context: ToolContext) -> ToolResult:
        raise NotImplementedError(f"{type(self).__name__} must implement call(request, context)")

    def result(self, payload: Any, **metadata: Any) -> ToolResult:
        """Return a `ToolResult` of this adapter."""
        return ToolResult(adapter=self.adapter_name, payload=payload, metadata=metadata)

    def error(
        self,
        kind: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        retryable: bool = False,
    ) -> ToolError:
        """Return a `ToolError` of this adapter (to raise)."""
        return ToolError(self.adapter_name, kind, message, details=details, retryable=retryable)

    @property
    def adapter_name(self) -> str:
        return self.name or type(self).__name__


def invoke(adapter: Adapter | type[Adapter], request: Any, context: Any = None) -> ToolResult:
    """Call `adapter` with `request` once; return its `ToolResult` or raise `ToolError`.

    `adapter` is an `Adapter` instance or class (instantiated without
    arguments). `context` is the step's `ctx`, a mapping with `run_id`,
    `workflow`, `step` and `attempt`, or None for the step executing in
    this thread. Any other exception from the adapter is raised as a
    non-retryable `ToolError(kind="adapter_error")`.
    """
    if isinstance(adapter, type) and issubclass(adapter, Adapter):
        adapter = adapter()
    if not isinstance(adapter, Adapter):
        raise TypeError(
            f"invoke() needs a squidmesh.tools.Adapter (class or instance), not {adapter!r}"
        )
    name = adapter.adapter_name
    started = time.monotonic()
    try:
        tool_context = ToolContext.from_value(context)
    except ValueError as problem:
        error = adapter.error("invalid_request", str(problem), details={"field": "context"})
        _log_call(name, started, error=error)
        raise error from None
    try:
        result = adapter.call(request, tool_context)
        if not isinstance(result, ToolResult):
            raise TypeError(f"call() returned {type(result).__name__}, expected a ToolResult")
    except ToolError as error:
        _log_call(name, started, error=error)
        raise
    except Exception as error:
        wrapped = ToolError(
            name,
            "adapter_error",
            f"the {name} adapter raised {type(error).__name__}",
            details={
                "exception": type(error).__name__,
                "error": str(error),
                "traceback": traceback.format_exc(limit=10),
            },
            retryable=False,
        )
        _log_call(name, started, error=wrapped)
        raise wrapped from error
    _log_call(name, started)
    return result


def _log_call(adapter: str, started: float, error: ToolError | None = None) -> None:
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    extra = {"adapter": adapter, "elapsed_ms": elapsed_ms}
    if error is None:
        logger.debug("%s call succeeded in %.1f ms", adapter, elapsed_ms, extra=extra)
    else:
        logger.info(
            "%s call failed (%s, retryable=%s) in %.1f ms: %s",
            adapter,
            error.kind,
            error.retryable,
            elapsed_ms,
            error.message,
            extra={**extra, "kind": error.kind},
        )
