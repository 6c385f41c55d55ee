"""The test tiers: `pytest -m "not slow"` is the fast tier, `pytest` the whole suite.

A test is `slow` when it needs more than Python and SQLite: a real `qcluster`
or another subprocess, chromium, Redis or PostgreSQL. conftest.py adds the
markers below at collection, so a test cannot forget the one its fixture
implies; a test that is slow for another reason (it runs `manage.py` in a
subprocess) carries `@pytest.mark.slow` itself.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FIXTURE_MARKERS", "SLOW_MARKERS", "implied_markers"]

#: A test using one of these fixtures gets the marker, whatever it declares.
FIXTURE_MARKERS = {
    "cluster": "cluster",
    "new_cluster": "cluster",
    "redis_broker": "redis",
}

#: A test carrying one of these markers is slow: it waits on another process
#: or a server the fast tier does not assume.
SLOW_MARKERS = frozenset({"cluster", "browser", "redis", "postgres"})


def implied_markers(markers: Iterable[str], fixtures: Iterable[str]) -> set[str]:
    """Return the markers a test with these `markers` and `fixtures` lacks."""
    have = set(markers)
    implied = {FIXTURE_MARKERS[name] for name in fixtures if name in FIXTURE_MARKERS}
    if (have | implied) & SLOW_MARKERS:
        implied.add("slow")
    return implied - have
