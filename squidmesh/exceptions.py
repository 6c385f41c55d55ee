"""Errors raised by squidmesh's public API and signals raised by step code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AlreadyRegistered",
    "AmbiguousRunId",
    "DeliveryDeferred",
    "InvalidArgument",
    "InvalidFilter",
    "InvalidIdempotencyKey",
    "InvalidPayload",
    "InvalidTransition",
    "RunNotFound",
    "SquidmeshError",
    "StepFailure",
    "TerminalFailure",
    "UnknownTrigger",
    "UnknownWorkflow",
    "WorkflowDefinitionError",
]


class SquidmeshError(Exception):
    """Base class of every error squidmesh raises on purpose."""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__)


class WorkflowDefinitionError(SquidmeshError):
    """A workflow declaration is invalid.

    Raised when the class is defined. `problems` lists each finding as
    `(check_id, message, hint)`; `manage.py check` reports the same findings.
    """

    def __init__(self, workflow: str, problems: Sequence[tuple[str, str, str]]):
        self.workflow = workflow
        self.problems = list(problems)
        lines = [f"Workflow {workflow!r} is invalid:"]
        for check_id, message, hint in self.problems:
            lines.append(f"  [{check_id}] {message}" + (f" (hint: {hint})" if hint else ""))
        super().__init__("\n".join(lines))


class AlreadyRegistered(WorkflowDefinitionError):
    """Two workflows claim the same registered name."""


class UnknownWorkflow(SquidmeshError):
    """No workflow is registered under this name."""

    def __init__(self, workflow: str):
        self.workflow = workflow
        super().__init__(
            f"Unknown workflow {workflow!r}: no workflow is registered under that name."
        )


class UnknownTrigger(SquidmeshError):
    """The workflow has no trigger of this name."""

    def __init__(self, workflow: str, trigger: str | None, known: Sequence[str]):
        self.workflow = workflow
        self.trigger = trigger
        self.known = list(known)
        if trigger is None:  # no name given, and only cron triggers to choose from
            super().__init__(
                f"Workflow {workflow!r} has no trigger for a manual start: its only triggers "
                f"are cron triggers ({', '.join(self.known)}), and a manual start never "
                "defaults to one. Name the trigger explicitly."
            )
            return
        super().__init__(
            f"Workflow {workflow!r} has no trigger {trigger!r}; "
            f"its triggers are: {', '.join(self.known) or '(none)'}."
        )


class InvalidPayload(SquidmeshError):
    """The payload does not match the trigger's payload contract.

    `errors` maps each bad field to its message; a payload that is not a
    mapping at all is reported under the key `"__all__"`.
    """

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        listed = "; ".join(f"{field}: {message}" for field, message in self.errors.items())
        super().__init__(f"Invalid payload: {listed}")


class RunNotFound(SquidmeshError):
    """No run exists with this id."""

    def __init__(self, run_id: Any):
        self.run_id = run_id
        super().__init__(f"Run {run_id!s} not found.")


class AmbiguousRunId(SquidmeshError):
    """Several runs have ids that start with this prefix."""

    def __init__(self, prefix: str, candidates: Sequence[Any], *, more: bool = False):
        self.prefix = prefix
        self.candidates = list(candidates)
        listed = ", ".join(str(candidate) for candidate in self.candidates)
        super().__init__(
            f"Run id prefix {prefix!r} matches several runs: {listed}{', …' if more else ''}. "
            "Give more characters."
        )


class InvalidTransition(SquidmeshError):
    """The run's status does not allow this operation."""

    def __init__(self, message: str, *, run_id: Any = None, status: str | None = None):
        self.run_id = run_id
        self.status = status
        super().__init__(message)


class InvalidArgument(SquidmeshError):
    """An argument of an API call is not acceptable; `field` names it."""

    def __init__(self, message: str | None = None, *, field: str | None = None):
        #: The argument (or query parameter) at fault, when there is one.
        self.field = field
        super().__init__(message)


class InvalidFilter(InvalidArgument):
    """A list filter or limit is not acceptable."""


class InvalidIdempotencyKey(InvalidArgument):
    """The idempotency key is malformed, or was used by a run this call cannot return."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, field="idempotency_key")


class DeliveryDeferred(SquidmeshError):
    """Another worker is still running this step attempt; leave the task queued.

    Raised by the executor so that django-q2 does not acknowledge the
    delivery: if the other worker dies, the task comes back after the lease
    and the attempt is then closed as interrupted.
    """


class StepFailure(Exception):
    """A step failed; raise it from step code to record a failure on the attempt.

    Retryable failures (the default) follow the step's retry policy; a
    failure with `retryable=False` skips the remaining attempts.
    `retry_after` (seconds, e.g. from an HTTP `Retry-After` header) makes
    the next attempt wait at least that long, even when the policy's
    backoff is shorter (up to `SQUIDMESH["MAX_RETRY_AFTER"]`).
    """

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})
        self.retryable = retryable
        self.retry_after = retry_after

    def as_error(self) -> dict[str, Any]:
        """Return the JSON-ready error recorded on the attempt."""
        error = {
            "type": type(self).__name__,
            "message": self.message,
            "details": self.details,
            "retryable": self.retryable,
        }
        if self.retry_after is not None and self.retryable:
            error["retry_after"] = self.retry_after
        return error


class TerminalFailure(StepFailure):
    """A step failed in a way retrying cannot fix; no further attempts are made."""

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None):
        super().__init__(message, details=details, retryable=False)
