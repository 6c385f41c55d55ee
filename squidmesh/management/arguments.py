"""argparse types of the commands' numeric arguments: every number is range-checked.

A number out of range is a usage error (exit status 2, one line), never an
OverflowError from a date or a database parameter further in.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = [
    "MAX_DAYS",
    "MAX_RECOVER_LIMIT",
    "MAX_RUNS_PER_TRIGGER",
    "MAX_SECONDS",
    "integer_between",
    "positive_days",
    "positive_number",
    "positive_seconds",
]

#: The longest span a duration argument may name: far enough for any real
#: retention or staleness, near enough that "now minus it" is a valid date.
MAX_YEARS = 100
MAX_DAYS = 365 * MAX_YEARS
MAX_SECONDS = 86400 * MAX_DAYS
#: The largest `--limit` of `recover` (runs handled in one sweep).
MAX_RECOVER_LIMIT = 100_000
#: The largest `squidmesh_cron list --runs` (recent runs shown per trigger).
MAX_RUNS_PER_TRIGGER = 100


def positive_number(unit: str, maximum: float) -> Callable[[str], float]:
    """Return an argparse type accepting a positive number of `unit` up to `maximum`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value <= maximum:  # also refuses nan and inf
            raise argparse.ArgumentTypeError(
                f"expected a positive number of {unit} up to {maximum:,.0f}, got {text!r}"
            )
        return value

    return parse


#: `--timeout` and `recover --older-than`; `prune --older-than`.
positive_seconds = positive_number("seconds", MAX_SECONDS)
positive_days = positive_number("days", MAX_DAYS)


def integer_between(minimum: int, maximum: int | Callable[[], int]) -> Callable[[str], int]:
    """Return an argparse type accepting an integer from `minimum` to `maximum` (or its call)."""

    def parse(text: str) -> int:
        upper = maximum() if callable(maximum) else maximum
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not minimum <= value <= upper:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {minimum} to {upper}, got {text!r}"
            )
        return value

    return parse
