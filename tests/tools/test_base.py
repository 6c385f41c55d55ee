import pickle

import pytest

from squidmesh import StepFailure, TerminalFailure
from squidmesh.runtime.context import StepContext
from squidmesh.tools import Adapter, ToolContext, ToolError, ToolResult, invoke


class Echo(Adapter):
    """Return the request and the context it was called with."""

    name = "echo"

    def call(self, request, context):
        if request == "fail":
            raise self.error("unavailable", "echo is down", details={"why": "test"}, retryable=True)
        if request == "crash":
            raise ValueError("bug in the adapter")
        if request == "wrong":
            return {"not": "a result"}
        return self.result({"request": request, "context": context.to_dict()}, source="memory")


def step_context(**changes):
    values = dict(
        run_id="run-1",
        workflow="wf",
        trigger="manual",
        step="call",
        attempt=2,
        payload={},
        context={},
    )
    values.update(changes)
    return StepContext(**values)


def test_invoke__adapter_class_is_instantiated_and_its_result_returned():
    result = invoke(Echo, {"x": 1}, {"run_id": "r", "step": "s", "attempt": 1})

    assert result == ToolResult(
        adapter="echo",
        payload={
            "request": {"x": 1},
            "context": {"run_id": "r", "workflow": None, "step": "s", "attempt": 1},
        },
        metadata={"source": "memory"},
    )
    assert result.to_dict() == {
        "adapter": "echo",
        "payload": result.payload,
        "metadata": {"source": "memory"},
    }


def test_invoke__step_context_is_normalized():
    result = invoke(Echo(), "hi", step_context())

    assert result.payload["context"] == {
        "run_id": "run-1",
        "workflow": "wf",
        "step": "call",
        "attempt": 2,
    }


def test_invoke__without_context_uses_the_step_executing_in_this_thread():
    with step_context(attempt=3):
        inside = invoke(Echo, "hi")
    outside = invoke(Echo, "hi")

    assert inside.payload["context"]["attempt"] == 3
    assert outside.payload["context"] == {
        "run_id": None,
        "workflow": None,
        "step": None,
        "attempt": None,
    }


def test_invoke__adapter_tool_error_propagates_unchanged():
    with pytest.raises(ToolError) as caught:
        invoke(Echo, "fail")

    assert caught.value.to_dict() == {
        "adapter": "echo",
        "kind": "unavailable",
        "message": "echo is down",
        "details": {"why": "test"},
        "retryable": True,
    }


def test_invoke__unexpected_adapter_exception_becomes_adapter_error():
    with pytest.raises(ToolError) as caught:
        invoke(Echo, "crash")

    error = caught.value
    assert (error.adapter, error.kind, error.retryable) == ("echo", "adapter_error", False)
    assert error.message == "the echo adapter raised ValueError"
    assert error.details["exception"] == "ValueError"
    assert error.details["error"] == "bug in the adapter"
    assert "ValueError: bug in the adapter" in error.details["traceback"]
    assert isinstance(error.__cause__, ValueError)


def test_invoke__adapter_returning_something_else_is_an_adapter_error():
    with pytest.raises(ToolError) as caught:
        invoke(Echo, "wrong")

    assert caught.value.kind == "adapter_error"
    assert caught.value.details["error"] == "call() returned dict, expected a ToolResult"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ("run-1", "context must be a step context, a mapping or None, not str"),
        ({"attempt": "2"}, "context: attempt must be an integer, not '2'"),
        ({"attempt": True}, "context: attempt must be an integer, not True"),
    ],
)
def test_invoke__bad_context_is_an_invalid_request(context, message):
    with pytest.raises(ToolError) as caught:
        invoke(Echo, "hi", context)

    assert caught.value.to_dict() == {
        "adapter": "echo",
        "kind": "invalid_request",
        "message": message,
        "details": {"field": "context"},
        "retryable": False,
    }


@pytest.mark.parametrize("adapter", [object(), "http", Exception, None])
def test_invoke__something_other_than_an_adapter_is_a_type_error(adapter):
    with pytest.raises(TypeError, match=r"needs a squidmesh\.tools\.Adapter"):
        invoke(adapter, {})


def test_adapter__without_call_is_an_adapter_error():
    class Lazy(Adapter):
        name = "lazy"

    with pytest.raises(ToolError) as caught:
        invoke(Lazy, {})

    assert caught.value.kind == "adapter_error"
    assert "Lazy must implement call(request, context)" in caught.value.details["error"]


def test_tool_context__idempotency_key_is_per_step_not_per_attempt():
    assert ToolContext("r", "wf", "s", 1).idempotency_key == "r:s"
    assert ToolContext("r", "wf", "s", 2).idempotency_key == "r:s"
    assert ToolContext("r", None, "s", None).idempotency_key == "r:s"
    assert ToolContext("r", "wf", None, 1).idempotency_key is None
    assert ToolContext(None, "wf", "s", 1).idempotency_key is None


def test_tool_error__retryable_becomes_a_retryable_step_failure():
    error = ToolError("http", "timeout", "too slow", details={"timeout": 1}, retryable=True)

    failure = error.as_step_failure()

    assert type(failure) is StepFailure
    assert failure.retryable is True
    assert failure.as_error() == {
        "type": "StepFailure",
        "message": "too slow",
        "details": {
            "adapter": "http",
            "kind": "timeout",
            "message": "too slow",
            "details": {"timeout": 1},
            "retryable": True,
        },
        "retryable": True,
    }


def test_tool_error__non_retryable_becomes_a_terminal_failure():
    error = ToolError("http", "http_status", "HTTP 404", details={"status": 404})

    failure = error.as_step_failure()

    assert isinstance(failure, TerminalFailure)
    assert failure.retryable is False
    assert failure.details == error.to_dict()


def test_tool_error__is_a_step_failure_recorded_like_its_conversion():
    error = ToolError("http", "connection", "refused", details={"reason": "x"}, retryable=True)

    assert isinstance(error, StepFailure)
    assert error.as_error() == error.as_step_failure().as_error()


def test_tool_error__survives_pickling():
    error = ToolError("http", "timeout", "too slow", details={"timeout": 1}, retryable=True)

    copy = pickle.loads(pickle.dumps(error))

    assert copy.to_dict() == error.to_dict()
    assert repr(copy) == (
        "ToolError(adapter='http', kind='timeout', message='too slow', retryable=True)"
    )
