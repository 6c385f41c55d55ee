"""Terminal-safe text for `manage.py squidmesh`: control characters in user strings are escaped."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.core.management.base import OutputWrapper

__all__ = ["EscapingOutputWrapper", "printable"]

# C0 and C1 controls, DEL, and the bidirectional overrides and isolates that
# can reorder what a terminal shows ("Trojan Source"). An escape sequence in a
# payload or an idempotency key must not reach the terminal as one.
_OTHER_CONTROLS = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE_IN_LINE = re.compile(f"[\x00-\x1f{_OTHER_CONTROLS}]")
# Whole messages keep their line breaks.
_UNSAFE_IN_TEXT = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHER_CONTROLS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any) -> str:
    """Return `str(value)` as one line with every control character escaped (`\\x1b`)."""
    return _UNSAFE_IN_LINE.sub(_escape, str(value))


class EscapingOutputWrapper(OutputWrapper):
    """An `OutputWrapper` that escapes control characters but newlines in what it writes.

    The command's own styling (colours of errors) is applied after the escape,
    so it still works.
    """

    # django-stubs ignores the same override: OutputWrapper.write adds styling
    # arguments to TextIOBase.write and returns None.
    def write(  # type: ignore[override]
        self,
        msg: str = "",
        style_func: Callable[[str], str] | None = None,
        ending: str | None = None,
    ) -> None:
        super().write(_UNSAFE_IN_TEXT.sub(_escape, msg), style_func, ending)
