"""Cancel from the admin while a real qcluster is executing the run's step."""

import pytest

import squidmesh
from squidmesh.models import StepAttempt
from squidmesh.testing import wait_for, wait_for_run
from tests.admin.conftest import cancel_url, client_for, make_staff, messages_of

pytestmark = pytest.mark.cluster


def test_single_cancel__executing_run_becomes_cancelling_then_cancelled(cluster, django_user_model):
    client = client_for(
        make_staff(django_user_model, "operator", "view_workflowrun", "cancel_workflowrun")
    )
    run = squidmesh.start_run("tests.slow", {"sleep": 3.0})
    wait_for(lambda: StepAttempt.objects.filter(run=run, status="running").exists(), timeout=30)

    response = client.post(cancel_url(run), {"confirm": "yes"}, follow=True)

    [(level, text)] = messages_of(response)
    assert level == "success" and "is cancelling" in text
    done = wait_for_run(run.pk, timeout=60)
    assert done.status == "cancelled"
    # The step that was executing finished and is recorded; nothing ran after it.
    assert [step_run.step for step_run in done.history] == ["slow"]
