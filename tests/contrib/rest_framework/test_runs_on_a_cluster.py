import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from squidmesh.testing import wait_for, wait_for_run
from tests.testapp.models import Execution

pytestmark = pytest.mark.cluster


def test_cancel_run__executing_step_makes_the_run_cancelling_then_cancelled(cluster):
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("operator", "op@example.com", "pw"))
    started = client.post(
        "/api/runs/", {"workflow": "tests.slow", "payload": {"sleep": 3}}, format="json"
    )
    run_id = started.json()["id"]
    # The step body is running once it has recorded its execution.
    wait_for(lambda: Execution.objects.filter(run_id=run_id, step="slow").exists(), 30)

    cancelled = client.post(f"/api/runs/{run_id}/cancel/")

    assert started.status_code == 201
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelling"
    again = client.post(f"/api/runs/{run_id}/cancel/")
    assert again.status_code == 200 and again.json()["status"] == "cancelling"
    done = wait_for_run(run_id, timeout=60)
    assert done.status == "cancelled"
    body = client.get(f"/api/runs/{run_id}/?history=true").json()
    # The executing step finished and was recorded; the run did not advance.
    assert [(step["step"], step["status"]) for step in body["history"]] == [("slow", "completed")]
    assert not Execution.objects.filter(run_id=run_id, step="after").exists()
