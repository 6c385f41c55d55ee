"""The example project's HTTP step (`shop.warehouse_sync`) and its demo command."""

import os
import subprocess
import sys

import pytest
from shop.warehouse import FakeWarehouse

import squidmesh
from squidmesh.testing import drain
from tests.conftest import ROOT


@pytest.fixture
def warehouse():
    reports = []
    running = FakeWarehouse(port=0, fail_first=1, report=reports.append).start()
    running.reports = reports
    yield running
    running.stop()


@pytest.mark.django_db
def test_warehouse_sync__retries_the_503_and_gets_one_ticket(warehouse):
    run = squidmesh.start_run(
        "shop.warehouse_sync",
        {
            "order_ref": "A-1",
            "lines": [{"sku": "S", "quantity": 1}],
            "warehouse_url": warehouse.url,
        },
    )

    drain(include_delayed=True)

    done = squidmesh.inspect_run(run.pk, include_history=True)
    assert done.status == "completed"
    assert done.context == {
        "warehouse_status": 201,
        "warehouse_reply": {"ticket": "PICK-0001", "duplicate": False},
    }
    notify = done.history[0]
    assert [(a.number, a.status) for a in notify.attempts.all()] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    # Both attempts carried one key, so the warehouse could tell them apart from new orders.
    assert warehouse.requests_by_key == {f"{run.pk}:notify_warehouse": 2}
    assert warehouse.tickets == {f"{run.pk}:notify_warehouse": "PICK-0001"}


@pytest.mark.django_db
def test_warehouse_sync__nothing_listening_fails_after_four_attempts(closed_port):
    url = f"http://127.0.0.1:{closed_port}/orders"
    run = squidmesh.start_run("shop.warehouse_sync", {"order_ref": "A-2", "warehouse_url": url})

    drain(include_delayed=True)

    done = squidmesh.inspect_run(run.pk, include_history=True)
    assert done.status == "failed"
    assert done.last_error["message"] == f"POST {url} failed: connection refused"
    assert done.history[0].attempts.count() == 4


@pytest.mark.cluster
def test_warehouse_demo_command__completes_through_a_real_cluster(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        EXAMPLE_SQLITE_PATH=str(tmp_path / "example.sqlite3"),
        DJANGO_SETTINGS_MODULE="example.settings",
    )
    finished = subprocess.run(
        [sys.executable, "manage.py", "warehouse_demo", "--port", "0", "--timeout", "90"],
        cwd=ROOT / "example_project",
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "-> 503" in finished.stdout
    assert "-> 201" in finished.stdout
    assert "notify_warehouse attempt 2: succeeded" in finished.stdout
    assert "shop.warehouse_sync" in finished.stdout
    assert "→ completed" in finished.stdout
    assert "'ticket': 'PICK-0001'" in finished.stdout
