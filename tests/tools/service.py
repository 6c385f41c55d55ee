"""A real HTTP server on 127.0.0.1 for tool adapter tests; it records every request."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["RecordingService"]


class RecordingService:
    """Serve the endpoints below on an ephemeral port until `stop()`.

    `/json`, `/echo`, `/text`, `/latin1`, `/not-json`, `/empty`, `/cookie`,
    `/redirect`, `/status/<code>[?retry_after=…]`, `/big-error`,
    `/slow?seconds=…`, `/flaky?fail=N&status=…` (fails the first N requests
    of each `X-Squidmesh-Run-Id`, or of `?key=`).
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.flaky_counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> RecordingService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.flaky_counts.clear()

    def received(self, path: str | None = None) -> list[dict]:
        """Return the requests received so far (for `path` only, if given)."""
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]


def _handler_for(service: RecordingService):
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps connections open, so tests can see the client reuse them.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without this the
        # client's delayed ACK adds ~40 ms to every response.
        disable_nagle_algorithm = True

        def log_message(self, format, *args):  # keep test output quiet
            pass

        def do_GET(self):
            self.handle_any()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

        def handle_any(self):
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            record = {
                "method": self.command,
                "path": parts.path,
                "query": query,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body.decode("utf-8", errors="replace"),
                "client_port": self.client_address[1],
            }
            with service.lock:
                service.requests.append(record)
            # The client may give up first (timeout tests).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.route(parts.path, query, record)

        def route(self, path, query, record):
            if path == "/json":
                self.reply(200, {"hello": "world", "items": [1, 2, 3]})
            elif path == "/echo":
                self.reply(200, record)
            elif path == "/text":
                self.reply(200, "hello, wörld".encode(), "text/plain; charset=utf-8")
            elif path == "/latin1":
                self.reply(200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1")
            elif path == "/not-json":
                self.reply(200, b"{not json", "application/json")
            elif path == "/empty":
                self.reply(204, b"", None)
            elif path == "/cookie":
                self.reply(
                    200,
                    {"cookie": record["headers"].get("cookie")},
                    extra={"Set-Cookie": "session=secret; Path=/"},
                )
            elif path == "/redirect":
                self.reply(302, b"", None, extra={"Location": "/json"})
            elif path.startswith("/status/"):
                code = int(path.rsplit("/", 1)[1])
                extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
                self.reply(code, {"error": f"status {code}"}, extra=extra)
            elif path == "/big-error":
                self.reply(500, ("x" * 5000).encode(), "text/plain")
            elif path == "/slow":
                time.sleep(float(query.get("seconds", 2)))
                self.reply(200, {"slow": True})
            elif path == "/flaky":
                key = query.get("key") or record["headers"].get("x-squidmesh-run-id", "")
                with service.lock:
                    service.flaky_counts[key] += 1
                    seen = service.flaky_counts[key]
                if seen <= int(query.get("fail", 1)):
                    self.reply(
                        int(query.get("status", 503)),
                        {"error": "try later", "seen": seen},
                        extra={"Retry-After": "1"},
                    )
                else:
                    self.reply(200, {"accepted": True, "seen": seen})
            else:
                self.reply(404, {"error": "no such endpoint"})

        def reply(self, status, body, content_type="application/json", extra=None):
            if isinstance(body, dict):
                body = json.dumps(body).encode()
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler
