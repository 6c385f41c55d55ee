"""argparse types and shared options of the commands' arguments.

Every number is range-checked: a number out of range is a usage error (exit
status 2, one line), never an OverflowError from a date or a database
parameter further in.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

__all__ = [
    "MAX_DAYS",
    "MAX_RECOVER_LIMIT",
    "MAX_RUNS_PER_TRIGGER",
    "MAX_SECONDS",
    "add_json_argument",
    "add_reason_argument",
    "add_run_id_argument",
    "add_wait_arguments",
    "field_assignment",
    "integer_between",
    "moment",
    "payload_object",
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


# -- values and shared options of `manage.py squidmesh` ------------------------


def payload_object(text: str) -> dict[str, Any]:
    """argparse type of `--payload`: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from None
    except RecursionError:
        raise argparse.ArgumentTypeError("nested too deeply to decode") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. \'{"order_ref": "A-1"}\'')
    return value


def field_assignment(text: str) -> tuple[str, Any]:
    """argparse type of a `FIELD=VALUE` argument; VALUE is JSON if it parses, else a string."""
    name, equals, raw = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw
    except RecursionError:
        raise argparse.ArgumentTypeError(f"{name}: nested too deeply to decode") from None


def moment(text: str) -> datetime:
    """argparse type of `--created-after/--created-before`: ISO-8601, local time if naive."""
    try:
        value = parse_datetime(text)
    except ValueError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 date or datetime (e.g. 2025-01-31 or 2025-01-31T08:00Z)"
        )
    try:
        value = value if timezone.is_aware(value) else timezone.make_aware(value)
        # The database compares in UTC: 0001-01-01T00:00+01:00 has no UTC time.
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is out of the range of dates") from None
    return value


def add_run_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_id",
        metavar="RUN_ID",
        help="The run's id, or its first 8 or more characters if no other run shares them.",
    )


def add_reason_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="Why: kept with your OS user name in the run's events.")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="Print JSON (the REST API's representation) instead of text.",
    )


def add_wait_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="Wait until the run ends, printing each attempt and status change to stderr.",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=300.0,
        help="Seconds --wait waits before giving up (default 300).",
    )
