import os
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from squidmesh.runtime.context import StepContext
from squidmesh.tools import HTTP, HTTPRequest, ToolError, invoke
from squidmesh.tools import http as http_module


def call(request, context=None):
    return invoke(HTTP, request, context)


def failure(request, context=None) -> ToolError:
    with pytest.raises(ToolError) as caught:
        invoke(HTTP, request, context)
    return caught.value


def step_context(attempt=1):
    return StepContext(
        run_id="run-42",
        workflow="tests.http_call",
        trigger="manual",
        step="call",
        attempt=attempt,
        payload={},
        context={},
    )


# -- success ----------------------------------------------------------------


def test_http__json_response_body_is_decoded(service):
    result = call({"url": service.url("/json")})

    assert result.adapter == "http"
    assert result.payload["status"] == 200
    assert result.payload["body"] == {"hello": "world", "items": [1, 2, 3]}
    assert result.payload["headers"]["content-type"] == "application/json"
    assert result.payload["headers"]["content-length"] == "38"
    assert set(result.metadata) == {"method", "url", "elapsed_ms"}
    assert result.metadata["method"] == "GET"
    assert result.metadata["url"] == service.url("/json")
    assert isinstance(result.metadata["elapsed_ms"], float)
    assert result.metadata["elapsed_ms"] >= 0


def test_http__text_response_body_is_text_in_its_charset(service):
    utf8 = call({"url": service.url("/text")})
    latin1 = call({"url": service.url("/latin1")})

    assert utf8.payload["body"] == "hello, wörld"
    assert utf8.payload["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert latin1.payload["body"] == "café"


def test_http__json_content_type_that_does_not_parse_falls_back_to_text(service):
    assert call({"url": service.url("/not-json")}).payload["body"] == "{not json"


def test_http__empty_response_body_is_an_empty_string(service):
    result = call({"url": service.url("/empty"), "method": "DELETE"})

    assert (result.payload["status"], result.payload["body"]) == (204, "")


def test_http__dataclass_request_sends_method_params_headers_and_json(service):
    request = HTTPRequest(
        url=service.url("/echo"),
        method="post",
        params={"page": "2", "q": "blue shoes"},
        headers={"Authorization": "Bearer t0ken"},
        json={"order": "A-1", "lines": [1, 2]},
    )

    result = call(request)

    echoed = result.payload["body"]
    assert echoed["method"] == "POST"
    assert echoed["query"] == {"page": "2", "q": "blue shoes"}
    assert echoed["headers"]["authorization"] == "Bearer t0ken"
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["body"] == '{"order": "A-1", "lines": [1, 2]}'
    assert result.metadata == {
        "method": "POST",
        "url": service.url("/echo?page=2&q=blue+shoes"),
        "elapsed_ms": result.metadata["elapsed_ms"],
    }


def test_http__params_as_pairs_keep_repeated_names(service):
    result = call({"url": service.url("/echo"), "params": [("tag", "a"), ("tag", "b")]})

    assert result.metadata["url"] == service.url("/echo?tag=a&tag=b")


def test_http__body_is_sent_as_is_or_form_encoded(service):
    raw = call({"url": service.url("/echo"), "method": "PUT", "body": b"\x00raw"})
    form = call({"url": service.url("/echo"), "method": "POST", "body": {"a": "1", "b": "x y"}})

    assert raw.payload["body"]["body"] == "\x00raw"
    assert form.payload["body"]["body"] == "a=1&b=x+y"
    assert form.payload["body"]["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_http__head_request_succeeds_without_body(service):
    result = call({"url": service.url("/json"), "method": "HEAD"})

    assert (result.payload["status"], result.payload["body"]) == (200, "")


def test_http__step_context_is_sent_as_headers(service):
    result = call({"url": service.url("/echo")}, step_context(attempt=3))

    headers = result.payload["body"]["headers"]
    assert headers["x-squidmesh-run-id"] == "run-42"
    assert headers["x-squidmesh-workflow"] == "tests.http_call"
    assert headers["x-squidmesh-step"] == "call"
    assert headers["x-squidmesh-attempt"] == "3"
    assert "idempotency-key" not in headers
    assert headers["user-agent"].startswith("squidmesh/")


def test_http__mapping_context_sends_only_what_it_has(service):
    result = call({"url": service.url("/echo")}, {"run_id": "r-7", "attempt": 1})

    headers = result.payload["body"]["headers"]
    assert headers["x-squidmesh-run-id"] == "r-7"
    assert headers["x-squidmesh-attempt"] == "1"
    assert "x-squidmesh-step" not in headers
    assert "x-squidmesh-workflow" not in headers


def test_http__idempotency_key_true_is_the_same_for_every_attempt(service):
    first = call({"url": service.url("/echo"), "idempotency_key": True}, step_context(1))
    second = call({"url": service.url("/echo"), "idempotency_key": True}, step_context(2))

    keys = [r.payload["body"]["headers"]["idempotency-key"] for r in (first, second)]
    assert keys == ["run-42:call", "run-42:call"]


def test_http__idempotency_key_string_is_sent_as_given(service):
    result = call({"url": service.url("/echo"), "idempotency_key": "order-A-1"})

    assert result.payload["body"]["headers"]["idempotency-key"] == "order-A-1"


def test_http__adapter_defaults_apply_and_request_headers_win(service):
    adapter = HTTP(timeout=5, headers={"X-Api-Key": "k1", "X-Team": "shop"})

    result = invoke(
        adapter,
        {"url": service.url("/echo"), "headers": {"X-Team": "ops", "X-Squidmesh-Step": "mine"}},
        step_context(),
    )

    headers = result.payload["body"]["headers"]
    assert (headers["x-api-key"], headers["x-team"]) == ("k1", "ops")
    assert headers["x-squidmesh-step"] == "mine"


def test_http__redirects_are_not_followed_unless_asked(service):
    plain = call({"url": service.url("/redirect")})
    followed = call({"url": service.url("/redirect"), "follow_redirects": True})

    assert plain.payload["status"] == 302
    assert plain.payload["headers"]["location"] == "/json"
    assert len(service.received("/json")) == 1
    assert followed.payload["status"] == 200
    assert followed.metadata["url"] == service.url("/redirect")
    assert followed.metadata["final_url"] == service.url("/json")


def test_http__credentials_in_the_url_are_kept_out_of_results(service):
    url = f"http://user:secret@127.0.0.1:{service.port}/echo"

    result = call({"url": url})

    assert result.metadata["url"] == service.url("/echo")
    assert result.payload["body"]["headers"]["authorization"].startswith("Basic ")


# -- HTTP status errors -------------------------------------------------------


def test_http__404_is_a_non_retryable_http_status_error(service):
    error = failure({"url": service.url("/status/404")})

    assert error.to_dict() == {
        "adapter": "http",
        "kind": "http_status",
        "message": f"GET {service.url('/status/404')} returned HTTP 404 Not Found",
        "details": {
            "status": 404,
            "method": "GET",
            "url": service.url("/status/404"),
            "elapsed_ms": error.details["elapsed_ms"],
            "body": {"error": "status 404"},
        },
        "retryable": False,
    }
    assert isinstance(error.details["elapsed_ms"], float)


def test_http__429_is_retryable_and_reports_retry_after(service):
    error = failure({"url": service.url("/status/429?retry_after=7"), "method": "POST"})

    assert error.kind == "http_status"
    assert error.retryable is True
    assert error.message == f"POST {service.url('/status/429')} returned HTTP 429 Too Many Requests"
    assert error.details["status"] == 429
    assert error.details["retry_after"] == 7
    assert error.details["url"] == service.url("/status/429?retry_after=7")


def test_http__retry_after_as_http_date_is_seconds_from_now(service):
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    past = "Wed, 21 Oct 2015 07:28:00 GMT"

    future_error = failure({"url": service.url("/status/503"), "params": {"retry_after": soon}})
    past_error = failure({"url": service.url("/status/503"), "params": {"retry_after": past}})

    assert 50 < future_error.details["retry_after"] <= 60
    assert past_error.details["retry_after"] == 0.0


def test_http__500_is_retryable(service):
    error = failure({"url": service.url("/status/500")})

    assert (error.kind, error.retryable, error.details["status"]) == ("http_status", True, 500)
    assert error.message.endswith("returned HTTP 500 Internal Server Error")
    assert "retry_after" not in error.details


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (409, False),
        (422, False),
        (408, True),
        (429, True),
        (502, True),
        (503, True),
        (504, True),
        (599, True),
    ],
)
def test_http__status_retryability(service, status, retryable):
    error = failure({"url": service.url(f"/status/{status}")})

    assert (error.kind, error.details["status"], error.retryable) == (
        "http_status",
        status,
        retryable,
    )


def test_http__large_error_body_is_truncated_in_details(service):
    error = failure({"url": service.url("/big-error")})

    assert error.details["body"] == "x" * http_module.ERROR_BODY_LIMIT + "…"


def test_http__error_status_is_requested_exactly_once(service):
    failure({"url": service.url("/flaky?key=once&fail=5&status=503")})

    assert len(service.received("/flaky")) == 1


# -- transport errors ---------------------------------------------------------


def test_http__slow_endpoint_hits_the_timeout_once(service):
    url = service.url("/slow?seconds=3")

    error = failure({"url": url, "timeout": 0.3})

    assert error.to_dict() == {
        "adapter": "http",
        "kind": "timeout",
        "message": (
            f"GET {service.url('/slow')} timed out after 0.3 s while waiting for the response"
        ),
        "details": {
            "method": "GET",
            "url": url,
            "elapsed_ms": error.details["elapsed_ms"],
            "timeout": 0.3,
            "phase": "read",
        },
        "retryable": True,
    }
    assert error.details["elapsed_ms"] >= 300
    assert len(service.received("/slow")) == 1


def test_http__connect_and_read_timeout_pair_is_accepted(service):
    error = failure({"url": service.url("/slow?seconds=3"), "timeout": (2, 0.2)})

    assert error.kind == "timeout"
    assert error.details["timeout"] == [2, 0.2]
    assert "0.2 s (read)" in error.message


def test_http__closed_port_is_a_retryable_connection_error(closed_port):
    url = f"http://127.0.0.1:{closed_port}/orders"

    error = failure({"url": url, "method": "POST", "json": {}})

    assert error.adapter == "http"
    assert error.kind == "connection"
    assert error.retryable is True
    assert error.message == f"POST {url} failed: connection refused"
    assert error.details["reason"] == "connection_refused"
    assert error.details["method"] == "POST"
    assert error.details["url"] == url
    assert "Connection refused" in error.details["error"]


def test_http__unresolvable_host_is_a_retryable_connection_error():
    error = failure({"url": "http://squidmesh-no-such-host.invalid/x", "timeout": 5})

    assert (error.kind, error.retryable) == ("connection", True)
    assert error.details["reason"] == "name_resolution"
    assert error.message.endswith("failed: could not resolve the host name")


def test_http__tls_to_a_plain_http_server_is_a_non_retryable_tls_error(service):
    error = failure({"url": f"https://127.0.0.1:{service.port}/json"})

    assert (error.kind, error.retryable) == ("tls", False)
    assert error.message == f"GET https://127.0.0.1:{service.port}/json failed the TLS handshake"


# -- invalid requests ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "must be a non-empty string"),
        (None, "must be a non-empty string"),
        ("not a url", "'not a url' contains whitespace or control characters"),
        ("example.com/orders", "'example.com/orders' has no scheme; expected http:// or https://"),
        (
            "ftp://example.com/x",
            "'ftp://example.com/x' has scheme 'ftp'; expected http:// or https://",
        ),
        ("http://", "'http://' has no host"),
        ("http:///orders", "'http:///orders' has no host"),
        ("http://[::1/x", "'http://[::1/x' is malformed: Invalid IPv6 URL"),
        (
            "http://host:port/",
            "'http://host:port/' is malformed: Port could not be cast to integer value as 'port'",
        ),
        ("http://host:99999/", "'http://host:99999/' is malformed: Port out of range 0-65535"),
    ],
)
def test_http__malformed_url_is_a_non_retryable_invalid_request(url, problem):
    error = failure({"url": url})

    assert error.to_dict() == {
        "adapter": "http",
        "kind": "invalid_request",
        "message": f"invalid HTTP request: url: {problem}",
        "details": {"errors": {"url": problem}},
        "retryable": False,
    }


@pytest.mark.parametrize(
    ("request_", "errors"),
    [
        ({}, {"url": "required"}),
        (
            {"url": "http://x", "verb": "GET"},
            {
                "verb": "unknown field; expected one of url, method, headers, params, body, json, timeout, idempotency_key, follow_redirects"
            },
        ),
        (
            {"url": "http://x", "method": "FETCH"},
            {"method": "'FETCH' is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"},
        ),
        ({"url": "http://x", "body": "a", "json": {}}, {"body": "give body or json, not both"}),
        (
            {"url": "http://x", "body": 12},
            {"body": "must be str, bytes or a mapping (form-encoded)"},
        ),
        (
            {"url": "http://x", "json": {"when": object}},
            {"json": "not JSON-serializable: Object of type type is not JSON serializable"},
        ),
        (
            {"url": "http://x", "headers": {"X-N": 1}},
            {"headers": "names and values must be strings without newlines: ['X-N']"},
        ),
        (
            {"url": "http://x", "headers": {"X-N": "a\r\nInjected: 1"}},
            {"headers": "names and values must be strings without newlines: ['X-N']"},
        ),
        (
            {"url": "http://x", "headers": ["X-N"]},
            {"headers": "must be a mapping of header names to strings"},
        ),
        (
            {"url": "http://x", "params": "q=1"},
            {"params": "must be a mapping or a list of (name, value) pairs"},
        ),
        (
            {"url": "http://x", "params": [("q", "1"), ("lonely",)]},
            {"params": "must be a mapping or a list of (name, value) pairs"},
        ),
        (
            {"url": "http://x", "timeout": 0},
            {"timeout": "must be a positive number of seconds or a (connect, read) pair"},
        ),
        ({"url": "http://x", "timeout": None, "method": "GET"}, None),
        (
            {"url": "http://x", "timeout": (1, 2, 3)},
            {"timeout": "must be a positive number of seconds or a (connect, read) pair"},
        ),
        (
            {"url": "http://x", "idempotency_key": True},
            {"idempotency_key": "True needs a step context (run_id and step)"},
        ),
        (
            {"url": "http://x", "idempotency_key": ""},
            {"idempotency_key": "must be True, False, None or a non-empty string"},
        ),
        ({"url": "http://x", "follow_redirects": "yes"}, {"follow_redirects": "must be a boolean"}),
    ],
)
def test_http__invalid_request_names_the_field(request_, errors, service):
    if errors is None:  # timeout None means the adapter's default: valid
        request_ = {**request_, "url": service.url("/json")}
        assert call(request_).payload["status"] == 200
        return
    error = failure(request_)

    assert (error.kind, error.retryable) == ("invalid_request", False)
    assert error.details == {"errors": errors}
    listed = "; ".join(f"{name}: {message}" for name, message in errors.items())
    assert error.message == f"invalid HTTP request: {listed}"


def test_http__invalid_request_sends_nothing(service):
    failure({"url": service.url("/echo"), "method": "FETCH"})

    assert service.received() == []


def test_http__request_of_another_type_is_an_invalid_request():
    error = failure("http://example.com")

    assert error.details == {"errors": {"request": "must be an HTTPRequest or a mapping, not str"}}


def test_http__every_problem_is_reported_at_once():
    error = failure({"url": "nope", "method": "FETCH", "timeout": -1})

    assert set(error.details["errors"]) == {"url", "method", "timeout"}


def test_http__missing_requests_package_is_a_clear_adapter_error(monkeypatch, service):
    # requests is installed here; hiding it is the only way to see this path.
    monkeypatch.setitem(sys.modules, "requests", None)

    error = failure({"url": service.url("/json")})

    assert (error.kind, error.retryable) == ("adapter_error", False)
    assert error.message == (
        "the HTTP adapter needs the requests package: pip install 'squidmesh[http]'"
    )


# -- the session ----------------------------------------------------------------


def test_http__session_is_reused_and_keeps_the_connection_open(service):
    call({"url": service.url("/echo")})
    first = http_module.session()
    call({"url": service.url("/echo")})
    call({"url": service.url("/echo")})

    ports = {request["client_port"] for request in service.received("/echo")}
    assert http_module.session() is first
    assert len(ports) == 1, "the pooled connection was not reused"


def test_http__session_keeps_no_cookies_between_calls(service):
    call({"url": service.url("/cookie")})
    second = call({"url": service.url("/cookie")})

    assert second.payload["headers"]["set-cookie"] == "session=secret; Path=/"
    assert second.payload["body"] == {"cookie": None}


def test_http__session_never_retries_below_the_adapter():
    adapters = http_module.session().adapters

    assert {prefix: adapter.max_retries.total for prefix, adapter in adapters.items()} == {
        "http://": 0,
        "https://": 0,
    }


def test_http__forked_child_gets_its_own_session(service):
    parent = http_module.session()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        try:
            child = http_module.session()
            result = call({"url": service.url("/echo")})
            answer = f"{child is not parent} {result.payload['status']}"
        except BaseException as error:
            answer = repr(error)
        os.write(write_end, answer.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)

    assert answer == "True 200"
    assert http_module.session() is parent
