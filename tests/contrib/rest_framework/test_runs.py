import json
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.dateparse import parse_datetime

import squidmesh
from squidmesh import fields
from squidmesh.models import WorkflowRun
from squidmesh.serialization import run_detail
from squidmesh.testing import drain
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db


def start(label="x", **kwargs):
    return squidmesh.start_run("tests.three_steps", {"label": label}, **kwargs)


# -- list ---------------------------------------------------------------------


def test_list_runs__newest_first_with_summary_fields(staff_client):
    first, second = start("one"), start("two")

    response = staff_client.get("/api/runs/")

    assert response.status_code == 200
    body = response.json()
    assert [run["id"] for run in body["results"]] == [str(second.pk), str(first.pk)]
    assert set(body) == {"next", "previous", "results"}  # no COUNT(*)
    listed = body["results"][0]
    assert listed["url"] == f"http://testserver/api/runs/{second.pk}/"
    assert listed["workflow"] == "tests.three_steps"
    assert listed["status"] == "pending"
    assert "payload" not in listed and "context" not in listed


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("workflow=tests.flaky", ["flaky"]),
        ("status=cancelled", ["cancelled"]),
        ("trigger=on_demand", ["report"]),
        ("workflow=tests.three_steps&status=pending", ["pending"]),
    ],
)
def test_list_runs__filters(staff_client, query, expected):
    runs = {
        "pending": start("pending"),
        "cancelled": squidmesh.cancel_run(start("cancelled").pk),
        "flaky": squidmesh.start_run("tests.flaky", {}),
        "report": squidmesh.start_run("shop.daily_report", {}, trigger="on_demand"),
    }
    names = {str(run.pk): name for name, run in runs.items()}

    response = staff_client.get(f"/api/runs/?{query}")

    assert response.status_code == 200
    assert [names[run["id"]] for run in response.json()["results"]] == expected


def test_list_runs__created_range_includes_after_and_excludes_before(staff_client):
    runs = [start(str(index)) for index in range(4)]
    after = runs[1].created_at.isoformat().replace("+00:00", "Z")
    before = runs[3].created_at.isoformat().replace("+00:00", "Z")

    response = staff_client.get("/api/runs/", {"created_after": after, "created_before": before})

    assert response.status_code == 200
    assert [run["id"] for run in response.json()["results"]] == [
        str(runs[2].pk),
        str(runs[1].pk),
    ]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=bogus", "status"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2025-13-45T00:00", "created_before"),
        ("created_after=2025-02-01T00:00Z&created_before=2025-01-01T00:00Z", "created_before"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=1001", "limit"),
        ("limit=%EF%BC%91", "limit"),  # a full-width 1, which int() reads as 1
        ("cursor=not-a-cursor", "cursor"),
        # Well-formed cursors with a position that is no time ("p=notadate&r=1",
        # "p=\x00"), once a ValidationError (500) from the database filter.
        ("cursor=cD1ub3RhZGF0ZSZyPTE=", "cursor"),
        ("cursor=cD0A", "cursor"),
        # Empty values were read as "no filter", despite the schema's minLength.
        ("workflow=", "workflow"),
        ("status=", "status"),
        ("trigger=", "trigger"),
        ("created_after=", "created_after"),
        ("cursor=cD0yMDI1LTEzLTQ1IDAwOjAwOjAw", "cursor"),  # p=2025-13-45 00:00:00
    ],
)
def test_list_runs__bad_query_parameter_is_400_naming_it(staff_client, query, parameter):
    response = staff_client.get(f"/api/runs/?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [parameter]


def test_list_runs__cursor_pages_cover_every_run_once_in_order(staff_client):
    runs = [start(str(index)) for index in range(7)]
    expected = [str(run.pk) for run in reversed(runs)]

    seen, url, pages = [], "/api/runs/?limit=3", []
    while url:
        body = staff_client.get(url).json()
        pages.append(body)
        seen += [run["id"] for run in body["results"]]
        url = body["next"]

    assert seen == expected
    assert [len(page["results"]) for page in pages] == [3, 3, 1]
    back = staff_client.get(pages[-1]["previous"]).json()
    assert [run["id"] for run in back["results"]] == expected[3:6]


def test_list_runs__query_count_does_not_grow_with_the_page(staff_client):
    def queries_to_list():
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get("/api/runs/?limit=100")
        assert response.status_code == 200
        return len(response.json()["results"]), len(captured)

    for index in range(5):
        start(str(index))
    listed_few, queries_few = queries_to_list()
    for index in range(45):
        start(str(index))
    listed_many, queries_many = queries_to_list()

    assert (listed_few, listed_many) == (5, 50)
    assert queries_few == queries_many == 1


def test_list_runs__with_filters_is_one_query(staff_client, django_assert_num_queries):
    start()
    with django_assert_num_queries(1):
        response = staff_client.get(
            "/api/runs/?workflow=tests.three_steps&status=pending&trigger=manual"
            "&created_after=2000-01-01T00:00Z"
        )
    assert len(response.json()["results"]) == 1


# -- detail -------------------------------------------------------------------


def test_run_detail__without_history_has_payload_and_context_and_null_history(staff_client):
    run = start("hello")

    response = staff_client.get(f"/api/runs/{run.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["payload"] == {"label": "hello"}
    assert body["context"] == {}
    assert body["history"] is None


def test_run_detail__with_history_lists_steps_in_order_with_attempts(staff_client):
    run = squidmesh.start_run("tests.flaky", {"fail_times": 1})
    drain(include_delayed=True)

    response = staff_client.get(f"/api/runs/{run.pk}/?history=true")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    [flaky] = body["history"]
    assert (flaky["step"], flaky["position"], flaky["status"]) == ("flaky", 1, "completed")
    assert [attempt["number"] for attempt in flaky["attempts"]] == [1, 2]
    assert [attempt["status"] for attempt in flaky["attempts"]] == ["failed", "succeeded"]
    assert flaky["attempts"][0]["error"]["message"] == "flaky failure 1"
    assert flaky["attempts"][1]["duration_seconds"] >= 0
    assert flaky["output"] == {"flaky_ok_on": 2}


def test_run_detail__history_follows_execution_order_through_on_error(staff_client):
    run = squidmesh.start_run("tests.flaky_with_fallback", {"fail_times": 1, "terminal": True})
    drain(include_delayed=True)

    body = staff_client.get(f"/api/runs/{run.pk}/?history=true").json()

    assert body["status"] == "completed"
    assert [(step["step"], step["status"]) for step in body["history"]] == [
        ("flaky", "failed"),
        ("recover", "completed"),
        ("done", "completed"),
    ]


def test_run_detail__history_costs_a_fixed_number_of_queries(staff_client):
    runs = [
        squidmesh.start_run("tests.flaky", {}),  # 1 step, 1 attempt
        start(),  # 3 steps, 3 attempts
        squidmesh.start_run("tests.flaky_with_fallback", {"fail_times": 1}),  # 2 steps, 3 attempts
    ]
    drain(include_delayed=True)

    counts = []
    for run in runs:
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(f"/api/runs/{run.pk}/?history=true")
        assert response.json()["status"] == "completed"
        counts.append(len(captured))

    # The run, its step runs, their attempts and its events.
    assert counts == [4, 4, 4]


def test_run_detail__matches_the_shared_representation(staff_client):
    run = start("same")
    drain()

    body = staff_client.get(f"/api/runs/{run.pk}/?history=1").json()

    expected = run_detail(squidmesh.inspect_run(run.pk, include_history=True), include_history=True)
    assert body.pop("url") == f"http://testserver/api/runs/{run.pk}/"
    assert body == expected


@pytest.mark.parametrize("flag", ["perhaps", ""])
def test_run_detail__bad_history_flag_is_400(staff_client, flag):
    run = start()
    response = staff_client.get(f"/api/runs/{run.pk}/?history={flag}")
    assert response.status_code == 400
    assert list(response.json()) == ["history"]


@pytest.mark.parametrize("run_id", [str(uuid.uuid4()), "not-a-uuid", "12345", "%20"])
def test_run_detail__unknown_or_malformed_id_is_404(staff_client, run_id):
    response = staff_client.get(f"/api/runs/{run_id}/")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


# -- create -------------------------------------------------------------------


def test_create_run__starts_a_pending_run_with_defaults_applied(staff_client):
    response = staff_client.post("/api/runs/", {"workflow": "tests.three_steps"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["trigger"] == "manual"
    assert body["payload"] == {"label": "x"}
    assert response["Location"] == body["url"]
    run = WorkflowRun.objects.get()
    assert str(run.pk) == body["id"]
    assert drain() == 3
    assert squidmesh.inspect_run(run.pk).status == "completed"


def test_create_run__through_a_named_trigger(staff_client):
    response = staff_client.post(
        "/api/runs/",
        {
            "workflow": "shop.order_fulfilment",
            "trigger": "backoffice",
            "payload": {"order_ref": "A-1", "amount_cents": 10, "tags": ["vip"]},
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["trigger"] == "backoffice"
    assert body["payload"]["tags"] == ["vip"]


def test_create_run__same_idempotency_key_returns_the_first_run_with_200(staff_client):
    request = {"workflow": "tests.three_steps", "payload": {"label": "a"}, "idempotency_key": "k-1"}

    first = staff_client.post("/api/runs/", request, format="json")
    again = staff_client.post("/api/runs/", request, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["idempotency_key"] == "k-1"
    assert WorkflowRun.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"workflow": ["This field is required."]}),
        (
            {"workflow": "nope"},
            {"workflow": ["Unknown workflow 'nope': no workflow is registered under that name."]},
        ),
        (
            {"workflow": "tests.three_steps", "trigger": "cron"},
            {
                "trigger": [
                    "Workflow 'tests.three_steps' has no trigger 'cron'; its triggers are: manual."
                ]
            },
        ),
        (
            {"workflow": "tests.three_steps", "payload": {"label": 3, "extra": True}},
            {
                "payload": {
                    "extra": ["is not a declared payload field"],
                    "label": ["must be a string"],
                }
            },
        ),
        (
            {"workflow": "shop.order_fulfilment", "payload": {"order_ref": "A"}},
            {"payload": {"amount_cents": ["this field is required"]}},
        ),
        (
            {"workflow": "tests.three_steps", "payload": ["label"]},
            {"payload": ["Expected a JSON object of payload fields."]},
        ),
        # An explicit null is refused, as start_run(workflow, None) is.
        (
            {"workflow": "tests.three_steps", "payload": None},
            {"payload": ["Expected a JSON object of payload fields, not null."]},
        ),
        # Misspelt optional fields were dropped and the run started on defaults.
        (
            {"workflow": "tests.three_steps", "paylod": {"label": "a"}, "idempotency-key": "abc"},
            {"idempotency-key": ["Unknown field."], "paylod": ["Unknown field."]},
        ),
        (
            {"workflow": "nope", "extra": 1},
            {"extra": ["Unknown field."]},
        ),
        (
            {"workflow": "tests.three_steps", "trigger": ""},
            {"trigger": ["This field may not be blank."]},
        ),
        (
            {
                "workflow": "shop.order_fulfilment",
                "payload": {"order_ref": "A", "amount_cents": 10**20},
            },
            {"payload": {"amount_cents": ["must be at most 2147483647"]}},
        ),
        (
            {"workflow": "tests.flaky", "payload": {"fail_times": 99999999999999999999999}},
            {"payload": {"fail_times": ["must be at most 9223372036854775807"]}},
        ),
        (
            {"workflow": "tests.three_steps", "idempotency_key": ""},
            {"idempotency_key": ["This field may not be blank."]},
        ),
        (
            {"workflow": "tests.three_steps", "idempotency_key": "k" * 256},
            {"idempotency_key": ["Ensure this field has no more than 255 characters."]},
        ),
    ],
)
def test_create_run__bad_request_is_400_with_field_errors_and_stores_nothing(
    staff_client, body, errors
):
    response = staff_client.post("/api/runs/", body, format="json")

    assert response.status_code == 400
    assert response.json() == errors
    assert not WorkflowRun.objects.exists()


@pytest.mark.parametrize(
    "content", ['{"workflow": ', '["tests.three_steps"]', "null", '"tests.three_steps"']
)
def test_create_run__malformed_or_non_object_body_is_400(staff_client, content):
    response = staff_client.post("/api/runs/", content, content_type="application/json")

    assert response.status_code == 400
    assert not WorkflowRun.objects.exists()


def nested_body(levels: int) -> str:
    return (
        '{"workflow": "shop.order_fulfilment", "trigger": "backoffice", "payload": '
        '{"order_ref": "D", "amount_cents": 1, "metadata": '
        + '{"a": ' * levels
        + "1"
        + "}" * levels
        + "}}"
    )


@pytest.mark.parametrize("levels", [40, 900, 5000, 100_000])
def test_create_run__deeply_nested_payload_is_400_never_a_recursion_error(staff_client, levels):
    # About a thousand levels once raised RecursionError (a 500) in parsing or validation.
    response = staff_client.generic(
        "POST", "/api/runs/", nested_body(levels), content_type="application/json"
    )

    assert response.status_code == 400
    body = response.json()
    if "payload" in body:
        assert body == {
            "payload": {
                "metadata": [
                    "must not nest objects and lists deeper than 32 levels "
                    "(SQUIDMESH['MAX_PAYLOAD_DEPTH'], counting the payload itself)"
                ]
            }
        }
    else:  # too deep for Python's JSON decoder
        assert body == {"detail": "JSON parse error - the body is nested too deeply."}
    assert not WorkflowRun.objects.exists()


def test_create_run__payload_within_the_depth_limit_starts(staff_client):
    response = staff_client.generic(
        "POST", "/api/runs/", nested_body(30), content_type="application/json"
    )
    assert response.status_code == 201


def test_create_run__body_over_the_upload_limit_is_413_json(staff_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000
    body = json.dumps({"workflow": "tests.three_steps", "payload": {"label": "x" * 10_000_000}})

    response = staff_client.generic("POST", "/api/runs/", body, content_type="application/json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": "The request body is too large (DATA_UPLOAD_MAX_MEMORY_SIZE)."
    }
    assert not WorkflowRun.objects.exists()


def test_list_runs__too_many_query_fields_is_400_json(staff_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    response = staff_client.get("/api/runs/?" + "&".join(f"x{n}=1" for n in range(20)))
    assert response.status_code == 400
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in response.json()["detail"]


@pytest.mark.parametrize("action", ["cancel", "replay"])
def test_cancel_and_replay__a_body_with_fields_is_400_naming_them(staff_client, action):
    run = start()

    response = staff_client.post(f"/api/runs/{run.pk}/{action}/", {"force": True}, format="json")

    assert response.status_code == 400
    assert response.json() == {"force": ["Unknown field."]}
    assert squidmesh.inspect_run(run.pk).status == "pending"
    assert WorkflowRun.objects.count() == 1


@pytest.mark.parametrize("action", ["cancel", "replay"])
def test_cancel_and_replay__an_empty_object_body_is_fine(staff_client, action):
    run = start()
    response = staff_client.post(f"/api/runs/{run.pk}/{action}/", {}, format="json")
    assert response.status_code in (200, 201)


# -- cancel -------------------------------------------------------------------


def test_cancel_run__pending_run_becomes_cancelled(staff_client):
    run = start()

    response = staff_client.post(f"/api/runs/{run.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    drain()  # the queued delivery finds a cancelled run and runs nothing
    assert squidmesh.inspect_run(run.pk).status == "cancelled"
    assert not Execution.objects.filter(run_id=run.pk).exists()


def test_cancel_run__run_waiting_to_retry_becomes_cancelled(staff_client):
    run = squidmesh.start_run("tests.flaky", {"fail_times": 1})
    drain()  # the first attempt fails; the retry is due later
    assert squidmesh.inspect_run(run.pk).status == "retrying"

    response = staff_client.post(f"/api/runs/{run.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    drain(include_delayed=True)
    assert squidmesh.inspect_run(run.pk).status == "cancelled"


def test_cancel_run__finished_run_is_409_with_reason_and_status(staff_client):
    run = start()
    drain()

    response = staff_client.post(f"/api/runs/{run.pk}/cancel/")

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Run {run.pk} is already completed and cannot be cancelled.",
        "status": "completed",
    }


@pytest.mark.parametrize("run_id", [str(uuid.uuid4()), "garbage"])
def test_cancel_run__unknown_run_is_404(staff_client, run_id):
    assert staff_client.post(f"/api/runs/{run_id}/cancel/").status_code == 404


# -- replay -------------------------------------------------------------------


def test_replay_run__starts_a_linked_run_and_leaves_the_source(staff_client):
    source = start("again")
    drain()

    response = staff_client.post(f"/api/runs/{source.pk}/replay/")

    assert response.status_code == 201
    body = response.json()
    assert body["replayed_from"] == str(source.pk)
    assert body["payload"] == {"label": "again"}
    assert body["status"] == "pending"
    assert response["Location"] == body["url"]
    assert squidmesh.inspect_run(source.pk).status == "completed"


@pytest.mark.parametrize("run_id", [str(uuid.uuid4()), "garbage"])
def test_replay_run__unknown_run_is_404(staff_client, run_id):
    assert staff_client.post(f"/api/runs/{run_id}/replay/").status_code == 404


def test_replay_run__workflow_no_longer_registered_is_409(staff_client, temporary_workflow):
    from squidmesh.registry import registry

    temporary_workflow({"n": fields.Integer()})
    source = squidmesh.start_run("tests.temporary", {"n": 1})
    registry.unregister("tests.temporary")

    response = staff_client.post(f"/api/runs/{source.pk}/replay/")

    assert response.status_code == 409
    assert "Unknown workflow 'tests.temporary'" in response.json()["detail"]
    assert WorkflowRun.objects.count() == 1


def test_replay_run__payload_no_longer_valid_is_409_with_field_errors(
    staff_client, temporary_workflow
):
    temporary_workflow({"n": fields.Integer()})
    source = squidmesh.start_run("tests.temporary", {"n": 1})
    temporary_workflow({"n": fields.String(), "m": fields.Integer()})

    response = staff_client.post(f"/api/runs/{source.pk}/replay/")

    assert response.status_code == 409
    body = response.json()
    assert body["payload"] == {"n": ["must be a string"], "m": ["this field is required"]}
    assert body["detail"].startswith("Invalid payload")
    assert WorkflowRun.objects.count() == 1


def test_timestamps_are_iso_8601(staff_client):
    run = start()
    body = staff_client.get(f"/api/runs/{run.pk}/").json()
    assert parse_datetime(body["created_at"]) == run.created_at
    assert body["created_at"].endswith("Z")
