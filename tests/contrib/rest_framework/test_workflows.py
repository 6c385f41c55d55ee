import pytest

from squidmesh.registry import registry

pytestmark = pytest.mark.django_db


def test_list_workflows__every_registered_workflow_sorted_with_links(staff_client):
    response = staff_client.get("/api/workflows/")

    assert response.status_code == 200
    body = response.json()
    assert [workflow["name"] for workflow in body] == registry.names()
    fulfilment = next(w for w in body if w["name"] == "shop.order_fulfilment")
    assert fulfilment == {
        "url": "http://testserver/api/workflows/shop.order_fulfilment/",
        "name": "shop.order_fulfilment",
        "description": "Reserve stock, wait for fraud screening, charge with retries, then ship.",
        "entry_step": "reserve_stock",
        "triggers": ["checkout", "backoffice"],
        "steps": [
            "reserve_stock",
            "fraud_screening",
            "announce_charge",
            "charge_card",
            "ship",
            "refund_and_notify",
        ],
    }


def test_workflow_detail__is_the_definition_plus_its_url(staff_client):
    response = staff_client.get("/api/workflows/shop.daily_report/")

    assert response.status_code == 200
    body = response.json()
    assert body.pop("url") == "http://testserver/api/workflows/shop.daily_report/"
    assert body == registry.get("shop.daily_report").describe()
    nightly = body["triggers"][0]
    assert (nightly["type"], nightly["expression"], nightly["timezone"]) == (
        "cron",
        "0 6 * * *",
        "Europe/Paris",
    )


@pytest.mark.parametrize("name", ["nope", "shop.nope", "shop", "%00"])
def test_workflow_detail__unknown_workflow_is_404(staff_client, name):
    response = staff_client.get(f"/api/workflows/{name}/")

    assert response.status_code == 404
    assert "Unknown workflow" in response.json()["detail"]
