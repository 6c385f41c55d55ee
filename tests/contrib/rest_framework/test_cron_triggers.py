import pytest

import squidmesh
from squidmesh.cron_schedules import fire, sync_schedules

pytestmark = pytest.mark.django_db


def test_cron_triggers__next_fire_time_and_last_runs(staff_client):
    sync_schedules()
    tick = fire("shop.daily_report", "nightly", intended="2026-05-04T04:00:00+00:00")
    squidmesh.start_run("shop.daily_report", {}, trigger="nightly")  # by hand: not a tick

    response = staff_client.get("/api/cron-triggers/?workflow=shop.daily_report")

    assert response.status_code == 200
    [nightly] = response.json()
    assert (nightly["workflow"], nightly["trigger"], nightly["state"]) == (
        "shop.daily_report",
        "nightly",
        "active",
    )
    assert nightly["expression"] == "0 6 * * *"
    assert nightly["timezone"] == "Europe/Paris"
    assert nightly["next_fire_time"] is not None
    assert [r["id"] for r in nightly["last_runs"]] == [tick]


def test_cron_triggers__denied_to_non_staff(user_client, anonymous_client):
    assert user_client.get("/api/cron-triggers/").status_code == 403
    assert anonymous_client.get("/api/cron-triggers/").status_code == 403
