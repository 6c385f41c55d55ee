"""What tests need from the machine (chromium, Redis), and what happens to them when it is missing.

Outside CI a missing part skips the tests that need it, with a reason naming
the install command, so the README's test command passes on a fresh
machine. With `CI=true` the same tests fail instead: CI must never hide a
test behind a skip.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import pytest

__all__ = [
    "CHROMIUM",
    "REDIS_ADDRESS",
    "REQUIREMENTS",
    "Requirement",
    "apply_policy",
    "decide",
    "fail_if_missing",
    "in_ci",
    "port_is_open",
]

CHROMIUM = "/usr/bin/chromium"
REDIS_ADDRESS = ("127.0.0.1", 6379)


@dataclass(frozen=True)
class Requirement:
    """A part of the machine that the tests carrying `marker` need."""

    marker: str
    what: str
    install: str


REQUIREMENTS = {
    "browser": Requirement(
        "browser",
        f"{CHROMIUM} (headless chromium driven by Playwright)",
        "install it with `apt-get install chromium`",
    ),
    "redis": Requirement(
        "redis",
        f"a Redis server at {REDIS_ADDRESS[0]}:{REDIS_ADDRESS[1]}",
        "install and start it with `apt-get install redis-server`",
    ),
}

#: The item's stash key for "this test must fail, the machine lacks what it needs".
MISSING_IN_CI = pytest.StashKey[str]()


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Return True when `CI` is set to a true value (GitHub Actions, GitLab and `.ci/run` set `CI=true`)."""
    return environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def port_is_open(address: tuple[str, int], timeout: float = 0.5) -> bool:
    """Return True if a TCP connection to `address` succeeds."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def is_available(marker: str) -> bool:
    """Probe the machine for the part behind `marker`."""
    if marker == "browser":
        return os.access(CHROMIUM, os.X_OK)
    if marker == "redis":
        return port_is_open(REDIS_ADDRESS)
    raise ValueError(f"no requirement for marker {marker!r}")


def decide(missing: Iterable[Requirement], *, ci: bool) -> tuple[str, str] | None:
    """Return `("skip" | "fail", reason)` for a test whose `missing` parts are absent, or None.

    The reason names each missing part and how to install it.
    """
    missing = list(missing)
    if not missing:
        return None
    reason = "; ".join(f"needs {part.what}: {part.install}" for part in missing)
    if ci:
        return "fail", f"{reason} (CI=true: a missing part fails instead of skipping)"
    return (
        "skip",
        f"{reason} (or deselect with -m 'not {' and not '.join(p.marker for p in missing)}')",
    )


def apply_policy(
    items: Iterable[pytest.Item],
    *,
    ci: bool,
    available: Callable[[str], bool] = is_available,
) -> None:
    """Skip (outside CI) or mark to fail (in CI) every item needing a part the machine lacks.

    Each part is probed once, and only if a collected test needs it.
    """
    probed: dict[str, bool] = {}

    def has(marker: str) -> bool:
        if marker not in probed:
            probed[marker] = available(marker)
        return probed[marker]

    for item in items:
        missing = [
            requirement
            for marker, requirement in REQUIREMENTS.items()
            if item.get_closest_marker(marker) and not has(marker)
        ]
        decision = decide(missing, ci=ci)
        if decision is None:
            continue
        outcome, reason = decision
        if outcome == "skip":
            item.add_marker(pytest.mark.skip(reason=reason))
        else:
            item.stash[MISSING_IN_CI] = reason


def fail_if_missing(item: pytest.Item) -> None:
    """Fail `item` at set-up, before its fixtures run, if `apply_policy` found a part missing in CI."""
    reason = item.stash.get(MISSING_IN_CI, None)
    if reason is not None:
        pytest.fail(reason, pytrace=False)
