"""The HTTP adapter's request: `HTTPRequest` and its validation, which names every bad field."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from squidmesh.tools.base import Adapter, ToolContext, ToolError

__all__ = ["DEFAULT_TIMEOUT", "HTTPRequest", "validate_request"]

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_TIMEOUT = 10.0

#: Headers carrying the tool context, so the receiving side can de-duplicate.
CONTEXT_HEADERS = {
    "run_id": "X-Squidmesh-Run-Id",
    "workflow": "X-Squidmesh-Workflow",
    "step": "X-Squidmesh-Step",
    "attempt": "X-Squidmesh-Attempt",
}
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class HTTPRequest:
    """One HTTP request; a plain dict with the same keys works as well.

    `body` is sent as is (str or bytes) or form-encoded (a mapping); `json`
    is encoded as JSON; at most one of them. `timeout` is seconds (or a
    `(connect, read)` pair). `idempotency_key=True` sends `run_id:step`
    (the same for every attempt of the step) as `Idempotency-Key`; a string
    sends that string.
    """

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Any = None
    body: str | bytes | Mapping[str, Any] | None = None
    json: Any = None
    timeout: float | tuple[float, float] | None = None
    idempotency_key: bool | str | None = None
    follow_redirects: bool = False


FIELDS = tuple(f.name for f in fields(HTTPRequest))


def validate_request(
    adapter: Adapter,
    request: Any,
    context: ToolContext,
    *,
    default_timeout: float,
    default_headers: Mapping[str, str],
) -> HTTPRequest:
    """Return `request` as a complete `HTTPRequest`, headers included.

    `default_timeout` and `default_headers` are the adapter's defaults.

    Raise `ToolError(kind="invalid_request")` naming every bad field.
    """
    if isinstance(request, Mapping):
        unknown = sorted(str(key) for key in request if key not in FIELDS)
        if unknown:
            raise invalid(
                adapter,
                {key: "unknown field; expected one of " + ", ".join(FIELDS) for key in unknown},
            )
        if "url" not in request:
            raise invalid(adapter, {"url": "required"})
        request = HTTPRequest(**request)
    if not isinstance(request, HTTPRequest):
        raise invalid(
            adapter,
            {"request": f"must be an HTTPRequest or a mapping, not {type(request).__name__}"},
        )
    errors: dict[str, str] = {}
    method = request.method.upper() if isinstance(request.method, str) else request.method
    if method not in METHODS:
        errors["method"] = f"{request.method!r} is not one of {', '.join(METHODS)}"
    url_problem = describe_url_problem(request.url)
    if url_problem:
        errors["url"] = url_problem
    headers = {**default_headers}
    headers.update({CONTEXT_HEADERS[key]: str(value) for key, value in context_items(context)})
    if not isinstance(request.headers, Mapping):
        errors["headers"] = "must be a mapping of header names to strings"
    elif bad := [name for name, value in request.headers.items() if not is_header(name, value)]:
        errors["headers"] = f"names and values must be strings without newlines: {bad!r}"
    else:
        headers.update(request.headers)
    if request.params is not None and not is_params(request.params):
        errors["params"] = "must be a mapping or a list of (name, value) pairs"
    if request.body is not None and request.json is not None:
        errors["body"] = "give body or json, not both"
    elif request.body is not None and not isinstance(request.body, str | bytes | Mapping):
        errors["body"] = "must be str, bytes or a mapping (form-encoded)"
    if request.json is not None:
        try:
            json.dumps(request.json, allow_nan=False)
        except (TypeError, ValueError) as problem:
            errors["json"] = f"not JSON-serializable: {problem}"
    timeout = default_timeout if request.timeout is None else request.timeout
    if not is_timeout(timeout):
        errors["timeout"] = "must be a positive number of seconds or a (connect, read) pair"
    elif isinstance(timeout, list):
        timeout = tuple(timeout)
    key = request.idempotency_key
    if key is True:
        if context.idempotency_key is None:
            errors["idempotency_key"] = "True needs a step context (run_id and step)"
        else:
            headers[IDEMPOTENCY_HEADER] = context.idempotency_key
    elif isinstance(key, str) and key and "\n" not in key and "\r" not in key:
        headers[IDEMPOTENCY_HEADER] = key
    elif key not in (None, False):
        errors["idempotency_key"] = "must be True, False, None or a non-empty string"
    if not isinstance(request.follow_redirects, bool):
        errors["follow_redirects"] = "must be a boolean"
    if errors:
        raise invalid(adapter, errors)
    return replace(request, method=method, headers=headers, timeout=timeout)


def invalid(adapter: Adapter, errors: Mapping[str, str]) -> ToolError:
    """Return the `invalid_request` error naming every bad field of a request."""
    listed = "; ".join(f"{name}: {message}" for name, message in errors.items())
    return adapter.error(
        "invalid_request", f"invalid HTTP request: {listed}", details={"errors": dict(errors)}
    )


def context_items(context: ToolContext) -> Iterator[tuple[str, Any]]:
    for key in CONTEXT_HEADERS:
        value = getattr(context, key)
        if value is not None:
            yield key, value


def is_header(name: Any, value: Any) -> bool:
    return (
        isinstance(name, str)
        and isinstance(value, str)
        and not any(char in text for text in (name, value) for char in "\r\n")
    )


def is_params(value: Any) -> bool:
    if isinstance(value, Mapping):
        return True
    return isinstance(value, list | tuple) and all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in value
    )


def is_timeout(value: Any) -> bool:
    def positive(number: Any) -> bool:
        return isinstance(number, int | float) and not isinstance(number, bool) and number > 0

    if isinstance(value, tuple | list):
        return len(value) == 2 and all(positive(item) for item in value)
    return positive(value)


def describe_url_problem(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return "must be a non-empty string"
    if any(char.isspace() or ord(char) < 32 for char in url):
        return f"{url!r} contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port validates it
    except ValueError as problem:
        return f"{url!r} is malformed: {problem}"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        return f"{url!r} has {scheme}; expected http:// or https://"
    if not parts.hostname:
        return f"{url!r} has no host"
    return None
