"""Steps of a workflow: domain steps, the `wait` and `log` built-ins, retry policy."""

from __future__ import annotations

import inspect
import logging
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from squidmesh.runtime.context import StepContext

__all__ = ["COMPLETE", "Log", "Retry", "Step", "Wait", "log", "wait"]

#: Transition target that completes the run.
COMPLETE = "complete"

LOG_LEVELS = {"debug", "info", "warning", "error", "critical"}


def _seconds(value: float | timedelta | None, what: str) -> float | None:
    """Return `value` in seconds, None for an absent (optional) duration."""
    if value is None:
        return None
    return _required_seconds(value, what)


def _required_seconds(value: float | timedelta, what: str) -> float:
    """Return `value` in seconds; raise `TypeError` naming `what` for anything else."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    # bool is an int; None and strings arrive from untyped callers.
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TypeError(f"{what} must be a non-negative number of seconds or a timedelta")
    return float(value)


@dataclass(frozen=True)
class Retry:
    """Per-step retry policy: `max_attempts`, exponential backoff, optional jitter.

    The delay after failed attempt `n` is `backoff_min * 2 ** (n - 1)` seconds,
    capped at `backoff_max`; with `jitter`, a random delay between half of
    that and all of it.
    """

    max_attempts: int = 1
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    jitter: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError("Retry.max_attempts must be an integer")
        if self.max_attempts < 1:
            raise ValueError("Retry.max_attempts must be at least 1")
        object.__setattr__(
            self, "backoff_min", _required_seconds(self.backoff_min, "Retry.backoff_min")
        )
        object.__setattr__(
            self, "backoff_max", _required_seconds(self.backoff_max, "Retry.backoff_max")
        )
        if self.backoff_max < self.backoff_min:
            raise ValueError("Retry.backoff_max must not be smaller than Retry.backoff_min")

    def describe(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "backoff_min": self.backoff_min,
            "backoff_max": self.backoff_max,
            "jitter": self.jitter,
        }


NO_RETRY = Retry()


class Step:
    """A unit of work: a callable `fn(data, ctx)` or a class with `run(self, data, ctx)`.

    `data` is the run's payload merged with the context accumulated so far;
    `ctx` is a `StepContext` (run id, step, attempt, logger). Return a
    mapping to merge into the context (or None); raise `StepFailure` /
    `TerminalFailure` to fail on purpose. Any other exception is a retryable
    failure recorded on the attempt.
    """

    kind = "task"

    def __init__(
        self,
        run: Callable[..., Any] | type | None = None,
        *,
        on_ok: str = COMPLETE,
        on_error: str | None = None,
        retry: Retry | None = None,
        timeout: float | timedelta | None = None,
        description: str = "",
    ):
        self.target = run
        self.on_ok = on_ok
        self.on_error = on_error
        self.retry = retry or NO_RETRY
        self.timeout = _seconds(timeout, "Step timeout")
        if not description and run is not None:
            description = (inspect.getdoc(run) or "").split("\n")[0]
        self.description = description
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def definition_errors(self) -> list[str]:
        """Return what is wrong with the step itself (not its transitions)."""
        errors = []
        target = self.target
        if isinstance(target, type):
            if not callable(getattr(target, "run", None)):
                errors.append(f"class {target.__name__} has no run(self, data, ctx) method")
        elif not callable(target):
            errors.append(f"{target!r} is neither a callable nor a class with a run method")
        if not isinstance(self.retry, Retry):
            errors.append("retry must be a squidmesh.Retry")
        if self.timeout is not None and self.timeout < 1:
            errors.append("timeout must be at least 1 second")
        return errors

    def transitions(self) -> dict[str, str]:
        edges = {"ok": self.on_ok}
        if self.on_error:
            edges["error"] = self.on_error
        return edges

    def execute(self, data: dict[str, Any], ctx: StepContext) -> Any:
        target = self.target
        if isinstance(target, type):
            return target().run(data, ctx)
        if target is None:  # `definition_errors()` stops such a step at class creation
            raise TypeError(f"step {self.name!r} has nothing to run")
        return target(data, ctx)

    def delay_before(self, data: Mapping[str, Any]) -> float:
        """Return seconds to wait before this step's first attempt (0 for task steps)."""
        return 0.0

    def describe(self) -> dict[str, Any]:
        target = self.target
        return {
            "name": self.name,
            "kind": self.kind,
            "target": f"{target.__module__}.{target.__qualname__}" if target else None,
            "on_ok": self.on_ok,
            "on_error": self.on_error,
            "retry": self.retry.describe(),
            "timeout": self.timeout,
            "description": self.description,
        }


class Wait(Step):
    """Continue after `duration` without holding a worker: the step is dispatched
    with a due time and completes when it is delivered."""

    kind = "wait"

    def __init__(self, duration: float | timedelta, **kwargs: Any):
        super().__init__(None, **kwargs)
        # Not `_seconds`: it lets None through, and a wait without a duration
        # crashed formatting its description (or, with one, had no delay).
        self.duration = _required_seconds(duration, "wait duration")
        self.description = kwargs.get("description") or f"wait {self.duration:g}s"

    def definition_errors(self) -> list[str]:
        return []

    def execute(self, data: dict[str, Any], ctx: StepContext) -> Any:
        return None

    def delay_before(self, data: Mapping[str, Any]) -> float:
        return self.duration

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "duration": self.duration}


class _FormatData(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Log(Step):
    """Write a durable marker: a log record with run metadata, kept on the step run.

    `message` may name payload/context values as `{field}`.
    """

    kind = "log"

    def __init__(self, message: str, level: str = "info", **kwargs: Any):
        super().__init__(None, **kwargs)
        self.message = message
        self.level = level
        self.description = kwargs.get("description") or f"log {level}: {message}"

    def definition_errors(self) -> list[str]:
        errors = []
        if not isinstance(self.message, str):
            errors.append("log message must be a string")
        if self.level not in LOG_LEVELS:
            errors.append(f"log level {self.level!r} must be one of {sorted(LOG_LEVELS)}")
        return errors

    def render(self, data: Mapping[str, Any]) -> str:
        try:
            return string.Formatter().vformat(self.message, (), _FormatData(data))
        except (ValueError, IndexError, AttributeError, KeyError):
            return self.message

    def execute(self, data: dict[str, Any], ctx: StepContext) -> Any:
        message = self.render(data)
        ctx.logger.log(logging.getLevelName(self.level.upper()), message)
        ctx.note = {"message": message, "level": self.level}
        return None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "message": self.message, "level": self.level}


def wait(duration: float | timedelta, **kwargs: Any) -> Wait:
    """Declare a step that continues after `duration` (seconds or timedelta)."""
    return Wait(duration, **kwargs)


def log(message: str, level: str = "info", **kwargs: Any) -> Log:
    """Declare a step that writes `message` at `level` as a durable marker."""
    return Log(message, level, **kwargs)
