"""The HTTP tool adapter, on `requests`: one request per call, errors normalized."""

from __future__ import annotations

import email.utils
import http
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from squidmesh.tools.base import Adapter, ToolContext, ToolError, ToolResult

if TYPE_CHECKING:
    import requests

__all__ = ["HTTP", "HTTPRequest", "session"]

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_TIMEOUT = 10.0
#: How much of an error response's body is kept in the error details.
ERROR_BODY_LIMIT = 2000

#: Headers carrying the tool context, so the receiving side can de-duplicate.
CONTEXT_HEADERS = {
    "run_id": "X-Squidmesh-Run-Id",
    "workflow": "X-Squidmesh-Workflow",
    "step": "X-Squidmesh-Step",
    "attempt": "X-Squidmesh-Attempt",
}
IDEMPOTENCY_HEADER = "Idempotency-Key"

#: `details["reason"]` of a connection error, and how its message says it.
CONNECTION_REASONS = {
    "connection_refused": "connection refused",
    "name_resolution": "could not resolve the host name",
    "connection_reset": "connection reset by the server",
    "remote_disconnected": "the server closed the connection without a response",
    "protocol_error": "the connection broke mid-response",
    "connection_error": "could not talk to the server",
}


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


_FIELDS = tuple(f.name for f in fields(HTTPRequest))


class HTTP(Adapter):
    """Make exactly one HTTP request per call, through a per-process pooled session.

    Status >= 400, transport failures and timeouts raise `ToolError`;
    408, 429, 5xx, timeouts and connection failures are retryable.
    `timeout` and `headers` given here are defaults for every request.
    """

    name = "http"

    def __init__(
        self, *, timeout: float = DEFAULT_TIMEOUT, headers: Mapping[str, str] | None = None
    ):
        self.timeout = timeout
        self.headers = dict(headers or {})

    def call(self, request: HTTPRequest | Mapping[str, Any], context: ToolContext) -> ToolResult:
        request = self.validate(request, context)
        requests = _import_requests(self)
        method, url = request.method, request.url
        started = time.monotonic()
        try:
            response = session().request(
                method,
                url,
                headers=dict(request.headers),
                params=request.params,
                data=request.body,
                json=request.json,
                timeout=request.timeout,
                allow_redirects=request.follow_redirects,
            )
        except requests.RequestException as failure:
            raise self._transport_error(failure, request, _elapsed_ms(started)) from None
        elapsed_ms = _elapsed_ms(started)
        first = response.history[0] if response.history else response
        sent_url = _safe_url(first.request.url or url)
        metadata = {"method": method, "url": sent_url, "elapsed_ms": elapsed_ms}
        if response.history:
            metadata["final_url"] = _safe_url(response.url)
        if response.status_code >= 400:
            raise self._status_error(response, method, sent_url, elapsed_ms)
        payload = {
            "status": response.status_code,
            "headers": {name.lower(): value for name, value in response.headers.items()},
            "body": _decode_body(response),
        }
        return self.result(payload, **metadata)

    # -- request -----------------------------------------------------------

    def validate(self, request: Any, context: ToolContext) -> HTTPRequest:
        """Return `request` as a complete `HTTPRequest`, headers included.

        Raise `ToolError(kind="invalid_request")` naming every bad field.
        """
        if isinstance(request, Mapping):
            unknown = sorted(str(key) for key in request if key not in _FIELDS)
            if unknown:
                raise self._invalid(
                    {key: "unknown field; expected one of " + ", ".join(_FIELDS) for key in unknown}
                )
            if "url" not in request:
                raise self._invalid({"url": "required"})
            request = HTTPRequest(**request)
        elif not isinstance(request, HTTPRequest):
            raise self._invalid(
                {"request": f"must be an HTTPRequest or a mapping, not {type(request).__name__}"}
            )
        errors: dict[str, str] = {}
        method = request.method.upper() if isinstance(request.method, str) else request.method
        if method not in METHODS:
            errors["method"] = f"{request.method!r} is not one of {', '.join(METHODS)}"
        url_problem = _url_problem(request.url)
        if url_problem:
            errors["url"] = url_problem
        headers = {**self.headers}
        headers.update({CONTEXT_HEADERS[key]: str(value) for key, value in _context_items(context)})
        if not isinstance(request.headers, Mapping):
            errors["headers"] = "must be a mapping of header names to strings"
        elif bad := [
            name for name, value in request.headers.items() if not _is_header(name, value)
        ]:
            errors["headers"] = f"names and values must be strings without newlines: {bad!r}"
        else:
            headers.update(request.headers)
        if request.params is not None and not _is_params(request.params):
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
        timeout = self.timeout if request.timeout is None else request.timeout
        if not _is_timeout(timeout):
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
            raise self._invalid(errors)
        return replace(request, method=method, headers=headers, timeout=timeout)

    def _invalid(self, errors: Mapping[str, str]) -> ToolError:
        listed = "; ".join(f"{name}: {message}" for name, message in errors.items())
        return self.error(
            "invalid_request", f"invalid HTTP request: {listed}", details={"errors": dict(errors)}
        )

    # -- errors ------------------------------------------------------------

    def _status_error(
        self, response: requests.Response, method: str, url: str, elapsed_ms: float
    ) -> ToolError:
        status = response.status_code
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = response.reason or ""
        details: dict[str, Any] = {
            "status": status,
            "method": method,
            "url": url,
            "elapsed_ms": elapsed_ms,
            "body": _error_body(response),
        }
        retry_after = _retry_after(response.headers.get("Retry-After"))
        if retry_after is not None:
            details["retry_after"] = retry_after
        return self.error(
            "http_status",
            f"{method} {_display_url(url)} returned HTTP {status} {phrase}".rstrip(),
            details=details,
            retryable=status in (408, 429) or status >= 500,
        )

    def _transport_error(
        self, failure: Exception, request: HTTPRequest, elapsed_ms: float
    ) -> ToolError:
        import requests

        method, url = request.method, _safe_url(request.url)
        where = f"{method} {_display_url(url)}"
        details: dict[str, Any] = {"method": method, "url": url, "elapsed_ms": elapsed_ms}
        causes = list(_causes(failure))
        if isinstance(
            failure,
            requests.exceptions.InvalidURL
            | requests.exceptions.MissingSchema
            | requests.exceptions.InvalidSchema
            | requests.exceptions.URLRequired,
        ):
            details["errors"] = {"url": str(failure)}
            return self.error(
                "invalid_request", f"invalid HTTP request: url: {failure}", details=details
            )
        if isinstance(
            failure, requests.exceptions.InvalidHeader | requests.exceptions.InvalidJSONError
        ):
            details["error"] = str(failure)
            return self.error(
                "invalid_request", f"invalid HTTP request: {failure}", details=details
            )
        if isinstance(failure, requests.Timeout) or any(_is_read_timeout(c) for c in causes):
            # requests raises ConnectionError, not Timeout, when the read
            # timeout strikes while the body is being downloaded.
            phase = "connect" if isinstance(failure, requests.ConnectTimeout) else "read"
            details.update(timeout=_json_timeout(request.timeout), phase=phase)
            waiting = "connecting" if phase == "connect" else "waiting for the response"
            return self.error(
                "timeout",
                f"{where} timed out after {_describe_timeout(request.timeout)} while {waiting}",
                details=details,
                retryable=True,
            )
        if isinstance(failure, requests.exceptions.SSLError):
            details["error"] = str(failure)
            # A certificate or protocol mismatch does not heal between attempts.
            return self.error("tls", f"{where} failed the TLS handshake", details=details)
        if isinstance(failure, requests.exceptions.TooManyRedirects):
            details["error"] = str(failure)
            return self.error("redirect", f"{where} redirected too many times", details=details)
        if isinstance(failure, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
            reason = _connection_reason(causes)
            details.update(reason=reason, error=str(failure))
            return self.error(
                "connection",
                f"{where} failed: {CONNECTION_REASONS[reason]}",
                details=details,
                retryable=True,
            )
        details.update(exception=type(failure).__name__, error=str(failure))
        return self.error(
            "transport",
            f"{where} failed: {type(failure).__name__}",
            details=details,
            retryable=True,
        )


# -- the per-process session ------------------------------------------------

_session: requests.Session | None = None
_session_pid: int | None = None
_session_lock = threading.Lock()


def session() -> requests.Session:
    """Return this process's pooled `requests.Session` (a forked child gets its own)."""
    global _session, _session_pid
    pid = os.getpid()
    if _session is None or _session_pid != pid:
        with _session_lock:
            if _session is None or _session_pid != pid:
                _session = _new_session()
                _session_pid = pid
    return _session


def _new_session() -> requests.Session:
    from http.cookiejar import DefaultCookiePolicy

    import requests
    from requests.adapters import HTTPAdapter

    import squidmesh

    new = requests.Session()
    # requests' own default is already no retries; say it, so that nothing
    # below the engine ever retries a step's request (DESIGN: retry).
    for prefix in ("http://", "https://"):
        new.mount(prefix, HTTPAdapter(max_retries=0))
    # The session is shared by every run in the process: a cookie set for
    # one run must not be sent on another run's requests.
    new.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    new.headers["User-Agent"] = (
        f"squidmesh/{squidmesh.__version__} {requests.utils.default_user_agent()}"
    )
    return new


def _reset_session_after_fork() -> None:
    global _session, _session_pid, _session_lock
    # The parent's pooled sockets and lock state are not the child's to use.
    _session, _session_pid, _session_lock = None, None, threading.Lock()


os.register_at_fork(after_in_child=_reset_session_after_fork)


def _import_requests(adapter: Adapter):
    try:
        import requests
    except ImportError:
        raise adapter.error(
            "adapter_error",
            "the HTTP adapter needs the requests package: pip install 'squidmesh[http]'",
        ) from None
    return requests


# -- helpers ------------------------------------------------------------------


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _context_items(context: ToolContext):
    for key in CONTEXT_HEADERS:
        value = getattr(context, key)
        if value is not None:
            yield key, value


def _is_header(name: Any, value: Any) -> bool:
    return (
        isinstance(name, str)
        and isinstance(value, str)
        and not any(char in text for text in (name, value) for char in "\r\n")
    )


def _is_params(value: Any) -> bool:
    if isinstance(value, Mapping):
        return True
    return isinstance(value, list | tuple) and all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in value
    )


def _is_timeout(value: Any) -> bool:
    def positive(number: Any) -> bool:
        return isinstance(number, int | float) and not isinstance(number, bool) and number > 0

    if isinstance(value, tuple | list):
        return len(value) == 2 and all(positive(item) for item in value)
    return positive(value)


def _json_timeout(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _describe_timeout(value: Any) -> str:
    if isinstance(value, tuple):
        return f"{value[0]:g} s (connect) / {value[1]:g} s (read)"
    return f"{value:g} s"


def _url_problem(url: Any) -> str | None:
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


def _safe_url(url: str) -> str:
    """Return `url` without user:password, for results, errors and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _display_url(url: str) -> str:
    """Return `url` without query and fragment, for stable messages."""
    try:
        return urlunsplit(urlsplit(url)._replace(query="", fragment=""))
    except ValueError:
        return url


def _charset(response: requests.Response) -> str:
    content_type = response.headers.get("Content-Type", "")
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return "utf-8"


def _is_json(response: requests.Response) -> bool:
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _text(response: requests.Response) -> str:
    try:
        return response.content.decode(_charset(response), errors="replace")
    except LookupError:
        return response.content.decode("utf-8", errors="replace")


def _decode_body(response: requests.Response) -> Any:
    """Return decoded JSON for a JSON response that parses, else the body as text."""
    text = _text(response)
    if text and _is_json(response):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _error_body(response: requests.Response) -> Any:
    body = _decode_body(response)
    if isinstance(body, str):
        return body if len(body) <= ERROR_BODY_LIMIT else body[:ERROR_BODY_LIMIT] + "…"
    if len(json.dumps(body)) <= ERROR_BODY_LIMIT:
        return body
    return _text(response)[:ERROR_BODY_LIMIT] + "…"


def _retry_after(value: str | None) -> float | None:
    """Return the seconds a `Retry-After` header asks to wait (either form), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, round((when - datetime.now(UTC)).total_seconds(), 3))


def _causes(failure: BaseException):
    """Yield `failure` and what it wraps (urllib3 keeps the root cause in `reason`)."""
    seen: set[int] = set()
    pending: list[Any] = [failure]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(current.args)


def _is_read_timeout(cause: BaseException) -> bool:
    from urllib3.exceptions import ReadTimeoutError

    return isinstance(cause, ReadTimeoutError | TimeoutError | socket.timeout)


def _connection_reason(causes: list[BaseException]) -> str:
    from urllib3.exceptions import NameResolutionError, ProtocolError

    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection_refused"
        if isinstance(cause, NameResolutionError | socket.gaierror):
            return "name_resolution"
        if isinstance(cause, ConnectionResetError):
            return "connection_reset"
        if isinstance(cause, http.client.RemoteDisconnected):
            return "remote_disconnected"
    for cause in causes:
        if isinstance(cause, ProtocolError):
            return "protocol_error"
    return "connection_error"
