"""REST: the audit trail (actor, source, `?history=true` events) and `Idempotency-Key`."""

import pytest

import squidmesh
from squidmesh.models import RunEvent, WorkflowRun
from squidmesh.testing import drain

pytestmark = pytest.mark.django_db


def events_of(run_id):
    return [(e.kind, e.actor, e.source) for e in RunEvent.objects.filter(run_id=run_id)]


def start(client, headers=None, **body):
    return client.post(
        "/api/runs/", {"workflow": "tests.three_steps", **body}, format="json", headers=headers
    )


def test_start_cancel_replay__record_the_request_user_from_rest(staff_client):
    started = start(staff_client).json()
    staff_client.post(f"/api/runs/{started['id']}/cancel/")
    replay = staff_client.post(f"/api/runs/{started['id']}/replay/").json()

    assert events_of(started["id"]) == [
        ("started", "operator", "rest"),
        ("cancelled", "operator", "rest"),
        ("replayed", "operator", "rest"),
    ]
    assert events_of(replay["id"]) == [("replay_of", "operator", "rest")]


def test_history__lists_the_events(staff_client):
    run_id = start(staff_client).json()["id"]

    detail = staff_client.get(f"/api/runs/{run_id}/?history=true").json()
    plain = staff_client.get(f"/api/runs/{run_id}/").json()

    assert [
        (e["kind"], e["actor"], e["source"], e["reason"], e["data"]) for e in detail["events"]
    ] == [("started", "operator", "rest", "", {})]
    assert plain["events"] is None


def test_start__idempotency_key_header_starts_one_run(staff_client):
    first = start(staff_client, headers={"Idempotency-Key": "order-7"})
    second = start(staff_client, headers={"Idempotency-Key": "order-7"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["idempotency_key"] == "order-7"
    assert WorkflowRun.objects.count() == 1


def test_start__header_and_body_key_must_agree(staff_client):
    same = start(staff_client, headers={"Idempotency-Key": "k"}, idempotency_key="k")
    assert same.status_code == 201

    response = start(staff_client, headers={"Idempotency-Key": "k2"}, idempotency_key="other")

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["idempotency_key"][0]
    assert WorkflowRun.objects.count() == 1


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_start__bad_header_is_a_400_naming_it(staff_client, key):
    response = start(staff_client, headers={"Idempotency-Key": key})

    assert response.status_code == 400
    assert list(response.json()) == ["Idempotency-Key"]
    assert not WorkflowRun.objects.exists()


def test_replay__double_submit_with_a_key_starts_one_replay(staff_client):
    source = squidmesh.start_run("tests.three_steps", {})
    drain()
    url = f"/api/runs/{source.pk}/replay/"

    first = staff_client.post(url, headers={"Idempotency-Key": "click-1"})
    second = staff_client.post(url, headers={"Idempotency-Key": "click-1"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert WorkflowRun.objects.filter(replayed_from=source).count() == 1


def test_replay__a_key_used_by_another_run_is_a_400(staff_client):
    squidmesh.start_run("tests.three_steps", {}, idempotency_key="taken")
    source = squidmesh.start_run("tests.three_steps", {})

    response = staff_client.post(
        f"/api/runs/{source.pk}/replay/", headers={"Idempotency-Key": "taken"}
    )

    assert response.status_code == 400
    assert "not a replay of run" in response.json()["Idempotency-Key"][0]
    assert not WorkflowRun.objects.filter(replayed_from=source).exists()


def test_list__bounds_in_the_wrong_order_are_one_check_shared_with_the_command(staff_client):
    response = staff_client.get(
        "/api/runs/", {"created_after": "2030-01-01T00:00Z", "created_before": "2020-01-01T00:00Z"}
    )

    assert response.status_code == 400
    assert response.json() == {
        "created_before": ["created_before must be later than created_after"]
    }


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["cancel", "replay"])
def test_cancel_and_replay__reason_in_the_body_is_kept_in_the_events(staff_client, action):
    run = squidmesh.start_run("tests.three_steps", {})

    response = staff_client.post(
        f"/api/runs/{run.pk}/{action}/", {"reason": "customer asked"}, format="json"
    )

    assert response.status_code in (200, 201), response.json()
    event = RunEvent.objects.filter(run=run).exclude(kind="started").get()
    assert (event.reason, event.source) == ("customer asked", "rest")


@pytest.mark.django_db
def test_cancel__reason_longer_than_the_limit_is_a_400_naming_it(staff_client):
    run = squidmesh.start_run("tests.three_steps", {})

    response = staff_client.post(
        f"/api/runs/{run.pk}/cancel/", {"reason": "x" * 2001}, format="json"
    )

    assert response.status_code == 400
    assert "reason" in response.json()
    assert WorkflowRun.objects.get(pk=run.pk).status == "pending"
