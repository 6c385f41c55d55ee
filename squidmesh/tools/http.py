"""The HTTP tool adapter, on `requests`: one request per call, errors normalized.

- `http_request`: `HTTPRequest` and its validation;
- `http_transport`: the per-process session and errors of requests that got no response;
- `http_responses`: body decoding and the error of a status >= 400.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from squidmesh.tools.base import Adapter, ToolContext, ToolResult
from squidmesh.tools.http_request import DEFAULT_TIMEOUT, HTTPRequest, validate_request
from squidmesh.tools.http_responses import ERROR_BODY_LIMIT, decode_body, safe_url, status_error
from squidmesh.tools.http_transport import (
    import_requests,
    milliseconds_since,
    session,
    transport_error,
)

__all__ = ["ERROR_BODY_LIMIT", "HTTP", "HTTPRequest", "session"]


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
        requests = import_requests(self)
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
            raise transport_error(self, failure, request, milliseconds_since(started)) from None
        elapsed_ms = milliseconds_since(started)
        first = response.history[0] if response.history else response
        sent_url = safe_url(first.request.url or url)
        metadata = {"method": method, "url": sent_url, "elapsed_ms": elapsed_ms}
        if response.history:
            metadata["final_url"] = safe_url(response.url)
        if response.status_code >= 400:
            raise status_error(self, response, method, sent_url, elapsed_ms)
        payload = {
            "status": response.status_code,
            "headers": {name.lower(): value for name, value in response.headers.items()},
            "body": decode_body(response),
        }
        return self.result(payload, **metadata)

    def validate(self, request: Any, context: ToolContext) -> HTTPRequest:
        """Return `request` as a complete `HTTPRequest`, headers included.

        Raise `ToolError(kind="invalid_request")` naming every bad field.
        """
        return validate_request(
            self, request, context, default_timeout=self.timeout, default_headers=self.headers
        )
