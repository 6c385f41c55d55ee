import pytest
from django.urls import resolve

from squidmesh.contrib.rest_framework.views import RunViewSet, WorkflowViewSet


@pytest.mark.parametrize(
    ("path", "viewset"),
    [
        ("/api/runs/", RunViewSet),
        ("/api/runs/0b6bd5d9-0c55-4b1e-9a4e-5b3b8f0f4d3a/cancel/", RunViewSet),
        ("/api/workflows/shop.order_fulfilment/", WorkflowViewSet),
    ],
)
def test_example_project_serves_the_api_under_api(path, viewset):
    assert resolve(path, urlconf="example.urls").func.cls is viewset


@pytest.mark.django_db
def test_options_and_head_are_reads(staff_client):
    options = staff_client.options("/api/runs/")
    head = staff_client.head("/api/runs/")

    assert options.status_code == head.status_code == 200
    assert set(options.json()["actions"]["POST"]) == {
        "workflow",
        "trigger",
        "payload",
        "reason",
        "idempotency_key",
    }
