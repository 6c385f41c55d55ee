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
