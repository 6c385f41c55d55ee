"""Plain-text tables with aligned columns for `manage.py squidmesh`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from squidmesh.management.terminal import printable

__all__ = ["render_table"]


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Return `rows` under `headers`, each column as wide as its widest cell.

    None prints as "-"; control characters are escaped, so a cell is one
    line and shows what it holds. Lines carry no trailing spaces, so the output diffs
    and greps cleanly.
    """
    cells = [[str(header) for header in headers]]
    cells += [["-" if value is None else printable(value) for value in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
