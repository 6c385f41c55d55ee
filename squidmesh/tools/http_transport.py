"""How the HTTP adapter sends: the per-process pooled session, and errors of requests that got no response."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from squidmesh.tools.base import Adapter, ToolError
from squidmesh.tools.http_responses import display_url, safe_url

if TYPE_CHECKING:
    import requests

    from squidmesh.tools.http_request import HTTPRequest

__all__ = ["import_requests", "milliseconds_since", "session", "transport_error"]

#: `details["reason"]` of a connection error, and how its message says it.
CONNECTION_REASONS = {
    "connection_refused": "connection refused",
    "name_resolution": "could not resolve the host name",
    "connection_reset": "connection reset by the server",
    "remote_disconnected": "the server closed the connection without a response",
    "protocol_error": "the connection broke mid-response",
    "connection_error": "could not talk to the server",
}

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


def import_requests(adapter: Adapter) -> ModuleType:
    try:
        import requests
    except ImportError:
        raise adapter.error(
            "adapter_error",
            "the HTTP adapter needs the requests package: pip install 'squidmesh[http]'",
        ) from None
    return requests


def milliseconds_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def transport_error(
    adapter: Adapter, failure: Exception, request: HTTPRequest, elapsed_ms: float
) -> ToolError:
    """Return the error of a request that got no response: timeout, TLS, connection..."""
    import requests

    method, url = request.method, safe_url(request.url)
    where = f"{method} {display_url(url)}"
    details: dict[str, Any] = {"method": method, "url": url, "elapsed_ms": elapsed_ms}
    causes = list(failure_causes(failure))
    if isinstance(
        failure,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.URLRequired,
    ):
        details["errors"] = {"url": str(failure)}
        return adapter.error(
            "invalid_request", f"invalid HTTP request: url: {failure}", details=details
        )
    if isinstance(
        failure, requests.exceptions.InvalidHeader | requests.exceptions.InvalidJSONError
    ):
        details["error"] = str(failure)
        return adapter.error("invalid_request", f"invalid HTTP request: {failure}", details=details)
    if isinstance(failure, requests.Timeout) or any(is_read_timeout(c) for c in causes):
        # requests raises ConnectionError, not Timeout, when the read
        # timeout strikes while the body is being downloaded.
        phase = "connect" if isinstance(failure, requests.ConnectTimeout) else "read"
        details.update(timeout=json_timeout(request.timeout), phase=phase)
        waiting = "connecting" if phase == "connect" else "waiting for the response"
        return adapter.error(
            "timeout",
            f"{where} timed out after {describe_timeout(request.timeout)} while {waiting}",
            details=details,
            retryable=True,
        )
    if isinstance(failure, requests.exceptions.SSLError):
        details["error"] = str(failure)
        # A certificate or protocol mismatch does not heal between attempts.
        return adapter.error("tls", f"{where} failed the TLS handshake", details=details)
    if isinstance(failure, requests.exceptions.TooManyRedirects):
        details["error"] = str(failure)
        return adapter.error("redirect", f"{where} redirected too many times", details=details)
    if isinstance(failure, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        reason = connection_reason(causes)
        details.update(reason=reason, error=str(failure))
        return adapter.error(
            "connection",
            f"{where} failed: {CONNECTION_REASONS[reason]}",
            details=details,
            retryable=True,
        )
    details.update(exception=type(failure).__name__, error=str(failure))
    return adapter.error(
        "transport",
        f"{where} failed: {type(failure).__name__}",
        details=details,
        retryable=True,
    )


def json_timeout(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def describe_timeout(value: Any) -> str:
    if isinstance(value, tuple):
        return f"{value[0]:g} s (connect) / {value[1]:g} s (read)"
    return f"{value:g} s"


def failure_causes(failure: BaseException) -> Iterator[BaseException]:
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


def is_read_timeout(cause: BaseException) -> bool:
    from urllib3.exceptions import ReadTimeoutError

    return isinstance(cause, ReadTimeoutError | TimeoutError | socket.timeout)


def connection_reason(causes: list[BaseException]) -> str:
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
