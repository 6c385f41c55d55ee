"""The example project's HTTP step (`shop.warehouse_sync`) and its demo command."""

import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from shop.warehouse import DEFAULT_WAREHOUSES, FakeWarehouse

import squidmesh
from squidmesh.exceptions import InvalidPayload
from squidmesh.models import WorkflowRun
from squidmesh.testing import drain
from tests.conftest import ROOT


@pytest.fixture
def warehouse(settings):
    """A fake warehouse on a free port, allow-listed as "local"."""
    reports = []
    running = FakeWarehouse(port=0, fail_first=1, report=reports.append).start()
    running.reports = reports
    settings.SHOP_WAREHOUSES = {"local": running.url}
    yield running
    running.stop()


@pytest.mark.django_db
def test_warehouse_sync__retries_the_503_and_gets_one_ticket(warehouse):
    run = squidmesh.start_run(
        "shop.warehouse_sync",
        {
            "order_ref": "A-1",
            "lines": [{"sku": "S", "quantity": 1}],
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
def test_warehouse_sync__nothing_listening_fails_after_four_attempts(closed_port, settings):
    url = f"http://127.0.0.1:{closed_port}/orders"
    settings.SHOP_WAREHOUSES = {"local": url}
    run = squidmesh.start_run("shop.warehouse_sync", {"order_ref": "A-2"})

    drain(include_delayed=True)

    done = squidmesh.inspect_run(run.pk, include_history=True)
    assert done.status == "failed"
    assert done.last_error["message"] == f"POST {url} failed: connection refused"
    assert done.history[0].attempts.count() == 4


@pytest.mark.parametrize(
    "payload",
    [
        {"order_ref": "A-3", "warehouse": "http://169.254.169.254/latest/meta-data/"},
        {"order_ref": "A-3", "warehouse_url": "http://169.254.169.254/latest/meta-data/"},
        {"order_ref": "A-3", "url": "http://127.0.0.1:5432/"},
    ],
)
@pytest.mark.django_db
def test_warehouse_sync__payload_cannot_choose_the_url(payload):
    with pytest.raises(InvalidPayload):
        squidmesh.start_run("shop.warehouse_sync", payload)

    assert not WorkflowRun.objects.exists()


@pytest.mark.django_db
def test_warehouse_sync__a_name_dropped_from_the_allow_list_fails_the_step_without_a_request(
    warehouse, settings
):
    run = squidmesh.start_run("shop.warehouse_sync", {"order_ref": "A-4"})
    settings.SHOP_WAREHOUSES = {"elsewhere": warehouse.url}

    drain(include_delayed=True)

    done = squidmesh.inspect_run(run.pk)
    assert done.status == "failed"
    assert done.last_error["message"] == "warehouse 'local' is not in SHOP_WAREHOUSES"
    assert warehouse.requests_by_key == {}


def test_warehouse_defaults__do_not_use_the_ports_runserver_listens_on():
    from example import settings as example_settings

    for url in [*DEFAULT_WAREHOUSES.values(), *example_settings.SHOP_WAREHOUSES.values()]:
        assert urlsplit(url).port not in {8000, 8765}, url
    assert FakeWarehouse.__init__.__defaults__[0] not in {8000, 8765}


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
