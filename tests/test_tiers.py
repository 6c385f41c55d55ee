"""The fast tier (`pytest -m "not slow"`) leaves out every test that needs more than Python and SQLite."""

import pytest

from tests.tiers import implied_markers


def test_a_plain_test_stays_in_the_fast_tier():
    assert implied_markers({"django_db"}, ["db", "settings"]) == set()


@pytest.mark.parametrize("marker", ["cluster", "browser", "redis", "postgres"])
def test_a_test_marked_for_an_outside_part_is_slow(marker):
    assert implied_markers({marker}, []) == {"slow"}


@pytest.mark.parametrize(
    ("fixture", "marker"),
    [("cluster", "cluster"), ("new_cluster", "cluster"), ("redis_broker", "redis")],
)
def test_a_fixture_implies_its_marker_and_slow(fixture, marker):
    assert implied_markers(set(), ["transactional_db", fixture]) == {marker, "slow"}


def test_markers_already_present_are_not_added_again():
    assert implied_markers({"cluster", "slow"}, ["new_cluster"]) == set()


def test_this_session_marked_every_cluster_test_slow(request):
    """conftest.py applies the tiers to the collected items (checked on this session's items)."""
    for item in request.session.items:
        if {"cluster", "new_cluster", "redis_broker"} & set(getattr(item, "fixturenames", ())):
            assert item.get_closest_marker("slow"), item.nodeid
