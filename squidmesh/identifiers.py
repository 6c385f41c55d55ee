"""Run ids at the boundary: every id that comes in (a task argument, a URL, an API call) is parsed here."""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["RunId", "parse_run_id"]

#: The type of a run's primary key once it is inside squidmesh.
RunId = uuid.UUID


def parse_run_id(value: Any) -> RunId:
    """Return `value` (a UUID or its text in any form `uuid.UUID` accepts) as a `RunId`.

    Raise `ValueError` for anything else, so that each caller says what a
    malformed id means for it (`RunNotFound`, a skipped delivery).
    """
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"{value!r} is not a run id") from None
