"""The changelist paginator: estimates on big unfiltered tables, capped counts otherwise."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from squidmesh.admin.pagination import RunPaginator
from squidmesh.models import WorkflowRun
from tests.admin.conftest import CHANGELIST, pending_run

pytestmark = pytest.mark.django_db


def test_count__small_table_is_counted_exactly():
    for number in range(3):
        pending_run(f"r{number}")

    paginator = RunPaginator(WorkflowRun.objects.all(), 2)

    assert paginator.count == 3
    assert not paginator.is_estimate and not paginator.is_capped


def test_count__filtered_list_stops_counting_at_the_cap(monkeypatch, operator_client):
    monkeypatch.setattr(RunPaginator, "COUNT_CAP", 2)
    for number in range(4):
        pending_run(f"r{number}")

    paginator = RunPaginator(WorkflowRun.objects.filter(status="pending"), 50)
    response = operator_client.get(CHANGELIST, {"status__exact": "pending"})

    assert paginator.count == 2 and paginator.is_capped
    assert "more than 2" in response.content.decode()


@pytest.mark.postgres
def test_count__unfiltered_large_table_uses_the_planner_estimate(monkeypatch, operator_client):
    monkeypatch.setattr(RunPaginator, "ESTIMATE_ABOVE", 2)
    for number in range(5):
        pending_run(f"r{number}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE squidmesh_workflowrun")

    paginator = RunPaginator(WorkflowRun.objects.all(), 50)
    response = operator_client.get(CHANGELIST)

    assert paginator.is_estimate
    assert paginator.count == 5  # ANALYZE of a tiny table is exact
    assert "about 5" in response.content.decode()


@pytest.mark.postgres
@pytest.mark.parametrize("estimate_above", [2, 50_000])
def test_count__unfiltered_list_costs_one_query_estimated_or_counted(monkeypatch, estimate_above):
    monkeypatch.setattr(RunPaginator, "ESTIMATE_ABOVE", estimate_above)
    for number in range(5):
        pending_run(f"r{number}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE squidmesh_workflowrun")

    paginator = RunPaginator(WorkflowRun.objects.all(), 50)
    with CaptureQueriesContext(connection) as queries:
        assert paginator.count == 5
    assert len(queries) == 1
    assert paginator.is_estimate == (estimate_above == 2)
