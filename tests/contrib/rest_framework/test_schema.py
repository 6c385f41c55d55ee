import io
import json

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

OPERATIONS = {
    "/api/cron-triggers/": {"get"},
    "/api/runs/": {"get", "post"},
    "/api/runs/{id}/": {"get"},
    "/api/runs/{id}/cancel/": {"post"},
    "/api/runs/{id}/replay/": {"post"},
    "/api/workflows/": {"get"},
    "/api/workflows/{name}/": {"get"},
}


def test_schema_endpoint__describes_every_operation_with_responses(staff_client):
    response = staff_client.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["info"]["title"] == "squidmesh"
    assert {path: set(methods) for path, methods in schema["paths"].items()} == OPERATIONS
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            success = [code for code in operation["responses"] if code in {"200", "201"}]
            assert success, f"{method} {path} documents no success response"
            for code in success:
                assert "$ref" in str(operation["responses"][code]["content"]), (method, path)
            assert "403" in operation["responses"], (method, path)
            if method == "post" and path == "/api/runs/":
                assert operation["requestBody"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/RunStart"
                }
    list_parameters = {p["name"] for p in schema["paths"]["/api/runs/"]["get"]["parameters"]}
    assert list_parameters == {
        "workflow",
        "status",
        "trigger",
        "created_after",
        "created_before",
        "cursor",
        "limit",
    }


def test_schema_components__match_the_responses(staff_client):
    import squidmesh
    from squidmesh.testing import drain

    run = squidmesh.start_run("tests.three_steps", {})
    drain()
    schema = json.loads(staff_client.get("/api/schema/?format=json").content)
    components = schema["components"]["schemas"]

    detail = staff_client.get(f"/api/runs/{run.pk}/?history=true").json()
    listed = staff_client.get("/api/runs/").json()["results"][0]

    assert set(components["RunDetail"]["properties"]) == set(detail)
    assert set(components["Run"]["properties"]) == set(listed)
    assert set(components["StepRun"]["properties"]) == set(detail["history"][0])
    assert set(components["Attempt"]["properties"]) == set(detail["history"][0]["attempts"][0])


def test_schema__project_wide_generation_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(target), stderr=io.StringIO()
    )

    schema = yaml.safe_load(target.read_text())
    assert set(OPERATIONS) <= set(schema["paths"])


def test_schema_endpoint__follows_the_read_permission(anonymous_client, user_client):
    assert anonymous_client.get("/api/schema/").status_code == 403
    assert user_client.get("/api/schema/").status_code == 403


@pytest.mark.parametrize(
    "url", ["/api/", "/api/runs/", "/api/workflows/", "/api/workflows/shop.order_fulfilment/"]
)
def test_browsable_api__renders_html_for_staff(staff_client, url):
    response = staff_client.get(url, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"Django REST framework" in response.content


def test_browsable_api__renders_run_detail_and_action_errors(staff_client):
    import squidmesh
    from squidmesh.testing import drain

    run = squidmesh.start_run("tests.three_steps", {})
    drain()

    page = staff_client.get(f"/api/runs/{run.pk}/?history=true", HTTP_ACCEPT="text/html")
    conflict = staff_client.post(f"/api/runs/{run.pk}/cancel/", HTTP_ACCEPT="text/html")

    assert page.status_code == 200
    assert str(run.pk).encode() in page.content
    assert conflict.status_code == 409
    assert b"already completed" in conflict.content


def response_schema(schema, path, code):
    content = schema["paths"][path]["post"]["responses"][code]["content"]["application/json"]
    name = content["schema"]["$ref"].rsplit("/", 1)[1]
    return schema["components"]["schemas"][name]


def test_schema__conflict_responses_require_only_the_keys_each_action_sends(staff_client):
    # One Conflict schema once required detail, payload and status: a cancel 409
    # has no payload, a replay 409 no status (schemathesis ST108).
    import jsonschema

    import squidmesh

    schema = json.loads(staff_client.get("/api/schema/?format=json").content)
    cancel = response_schema(schema, "/api/runs/{id}/cancel/", "409")
    replay = response_schema(schema, "/api/runs/{id}/replay/", "409")
    assert sorted(cancel["required"]) == ["detail", "status"]
    assert replay["required"] == ["detail"]
    assert set(replay["properties"]) == {"detail", "payload"}

    run = squidmesh.start_run("tests.three_steps", {})
    squidmesh.cancel_run(run.pk)
    refused = staff_client.post(f"/api/runs/{run.pk}/cancel/")
    assert refused.status_code == 409
    resolver = {"components": schema["components"], **cancel}
    jsonschema.validate(refused.json(), resolver)


def test_schema__limit_documents_its_bounds(staff_client, settings):
    settings.SQUIDMESH = {"MAX_LIST_LIMIT": 500}
    schema = json.loads(staff_client.get("/api/schema/?format=json").content)
    limit = next(
        p for p in schema["paths"]["/api/runs/"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}


def test_schema__start_body_refuses_null_payload_and_documents_413(staff_client):
    schema = json.loads(staff_client.get("/api/schema/?format=json").content)
    start = schema["components"]["schemas"]["RunStart"]["properties"]
    assert "nullable" not in start["payload"]
    assert start["payload"]["type"] == "object"
    assert "413" in schema["paths"]["/api/runs/"]["post"]["responses"]
