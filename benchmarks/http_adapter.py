"""Time `invoke(HTTP, ...)` against a local server next to raw `requests` (calls interleaved)."""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from squidmesh.tools import HTTP, invoke
from tests.tools.service import RecordingService


def main(n=500):
    service = RecordingService().start()
    url = service.url("/json")
    context = {"run_id": "bench", "workflow": "bench", "step": "call", "attempt": 1}
    raw = requests.Session()
    variants = {
        "invoke(HTTP), pooled session": lambda: invoke(HTTP, {"url": url}, context),
        "requests, one shared Session": lambda: raw.get(url, timeout=10).json(),
        "requests, new Session per call": lambda: requests.Session().get(url, timeout=10).json(),
    }
    samples = {label: [] for label in variants}
    try:
        for call in variants.values():
            call()  # warm up
        # Interleaved and rotated, so that load from other processes hits every variant alike.
        labels = list(variants)
        for round_number in range(n):
            shift = round_number % len(labels)  # rotate, so no variant always goes first
            for label in labels[shift:] + labels[:shift]:
                call = variants[label]
                started = time.perf_counter()
                call()
                samples[label].append((time.perf_counter() - started) * 1000)
        for label, values in samples.items():
            values.sort()
            print(
                f"{label:<32} n={n}  p50={statistics.median(values):.2f} ms  "
                f"p95={values[int(n * 0.95) - 1]:.2f} ms"
            )
        received = service.received("/json")
        ports = {request["client_port"] for request in received}
        print(f"server saw {len(received)} requests on {len(ports)} TCP connections")
    finally:
        service.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
