from datetime import datetime

import pytest

import squidmesh
from squidmesh import InvalidFilter

pytestmark = pytest.mark.django_db


def test_list_runs__by_trigger():
    squidmesh.start_run("shop.daily_report", {}, trigger="on_demand")
    squidmesh.start_run("shop.daily_report", {}, trigger="nightly")

    assert [run.trigger for run in squidmesh.list_runs(trigger="nightly")] == ["nightly"]


def test_list_runs__created_range_is_inclusive_exclusive():
    runs = [squidmesh.start_run("tests.three_steps", {}) for _ in range(3)]

    listed = squidmesh.list_runs(
        created_after=runs[0].created_at, created_before=runs[2].created_at
    )

    assert [run.pk for run in listed] == [runs[1].pk, runs[0].pk]


@pytest.mark.parametrize(
    "filters",
    [{"trigger": 3}, {"created_after": "2025-01-01"}, {"created_before": datetime.now().date()}],
)
def test_list_runs__bad_new_filters_raise_invalid_filter(filters):
    with pytest.raises(InvalidFilter, match=next(iter(filters))):
        squidmesh.list_runs(**filters)
