"""A fake warehouse HTTP API for the example: flaky on purpose, de-duplicating on Idempotency-Key."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings

__all__ = ["DEFAULT_WAREHOUSES", "FakeWarehouse", "allowed_warehouses"]

#: Used when the project has no `SHOP_WAREHOUSES` setting. Not port 8000 or
#: 8765: those are where `runserver` usually listens.
DEFAULT_WAREHOUSES = {"local": "http://127.0.0.1:18765/orders"}


def allowed_warehouses() -> dict[str, str]:
    """Return the warehouses `shop.warehouse_sync` may call, name → URL (`settings.SHOP_WAREHOUSES`).

    Runs name a warehouse; they never carry a URL, so starting a run cannot
    make the worker send a request to an address of the caller's choosing.
    """
    return getattr(settings, "SHOP_WAREHOUSES", DEFAULT_WAREHOUSES)


class FakeWarehouse:
    """Serve `POST /orders` on 127.0.0.1 in a thread.

    The first `fail_first` requests of each idempotency key get a 503 (a
    warehouse having a bad moment); after that the order gets a pick ticket,
    and a repeated key gets the same ticket back instead of a second one.
    """

    def __init__(
        self, port: int = 18765, fail_first: int = 1, report: Callable[[str], None] = print
    ):
        self.fail_first = fail_first
        self.report = report
        self.requests_by_key: Counter[str] = Counter()
        self.tickets: dict[str, str] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/orders"

    def start(self) -> FakeWarehouse:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def receive(self, key: str, attempt: str, order: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests_by_key[key] += 1
            seen = self.requests_by_key[key]
            if seen <= self.fail_first:
                status, reply = 503, {"error": "warehouse busy, try again"}
            elif key in self.tickets:
                status, reply = 200, {"ticket": self.tickets[key], "duplicate": True}
            else:
                self.tickets[key] = f"PICK-{len(self.tickets) + 1:04d}"
                status, reply = 201, {"ticket": self.tickets[key], "duplicate": False}
        self.report(
            f"  warehouse: {order.get('order_ref')} attempt {attempt} key {key} -> {status}"
        )
        return status, reply

    def _handler(self):
        warehouse = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    order = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    return self.reply(400, {"error": "body must be JSON"}, {})
                key = self.headers.get("Idempotency-Key")
                if self.path != "/orders":
                    return self.reply(404, {"error": "no such endpoint"}, {})
                if not key:
                    return self.reply(400, {"error": "Idempotency-Key header is required"}, {})
                attempt = self.headers.get("X-Squidmesh-Attempt", "?")
                status, reply = warehouse.receive(key, attempt, order)
                self.reply(status, reply, {"Retry-After": "1"} if status == 503 else {})

            def reply(self, status: int, body: dict, headers: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
