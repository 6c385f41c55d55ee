"""What the HTTP adapter makes of a response: its body decoded, an error for status >= 400."""

from __future__ import annotations

import email.utils
import http
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from squidmesh.tools.base import Adapter, ToolError

if TYPE_CHECKING:
    import requests

__all__ = ["ERROR_BODY_LIMIT", "decode_body", "display_url", "safe_url", "status_error"]

#: How much of an error response's body is kept in the error details.
ERROR_BODY_LIMIT = 2000


def status_error(
    adapter: Adapter, response: requests.Response, method: str, url: str, elapsed_ms: float
) -> ToolError:
    """Return the error of a response with status >= 400 (408, 429 and 5xx are retryable)."""
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
        "body": error_body(response),
    }
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is not None:
        details["retry_after"] = retry_after
    return adapter.error(
        "http_status",
        f"{method} {display_url(url)} returned HTTP {status} {phrase}".rstrip(),
        details=details,
        retryable=status in (408, 429) or status >= 500,
    )


def safe_url(url: str) -> str:
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


def display_url(url: str) -> str:
    """Return `url` without query and fragment, for stable messages."""
    try:
        return urlunsplit(urlsplit(url)._replace(query="", fragment=""))
    except ValueError:
        return url


def charset(response: requests.Response) -> str:
    content_type = response.headers.get("Content-Type", "")
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return "utf-8"


def is_json(response: requests.Response) -> bool:
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def body_text(response: requests.Response) -> str:
    try:
        return response.content.decode(charset(response), errors="replace")
    except LookupError:
        return response.content.decode("utf-8", errors="replace")


def decode_body(response: requests.Response) -> Any:
    """Return decoded JSON for a JSON response that parses, else the body as text."""
    text = body_text(response)
    if text and is_json(response):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def error_body(response: requests.Response) -> Any:
    body = decode_body(response)
    if isinstance(body, str):
        return body if len(body) <= ERROR_BODY_LIMIT else body[:ERROR_BODY_LIMIT] + "…"
    if len(json.dumps(body)) <= ERROR_BODY_LIMIT:
        return body
    return body_text(response)[:ERROR_BODY_LIMIT] + "…"


def parse_retry_after(value: str | None) -> float | None:
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
