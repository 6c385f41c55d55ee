import pytest
from django.test import override_settings
from rest_framework.permissions import BasePermission

import squidmesh
from squidmesh.models import WorkflowRun

pytestmark = pytest.mark.django_db

READS = [
    "/api/",
    "/api/workflows/",
    "/api/workflows/tests.three_steps/",
    "/api/runs/",
    "/api/schema/",
]


@pytest.fixture
def run():
    return squidmesh.start_run("tests.three_steps", {})


def writes(run):
    return [
        ("/api/runs/", {"workflow": "tests.three_steps"}),
        (f"/api/runs/{run.pk}/cancel/", None),
        (f"/api/runs/{run.pk}/replay/", None),
    ]


@pytest.mark.parametrize("client_name", ["anonymous_client", "user_client"])
def test_default_permissions__anonymous_and_non_staff_users_cannot_read(request, client_name, run):
    client = request.getfixturevalue(client_name)
    for url in [*READS, f"/api/runs/{run.pk}/"]:
        response = client.get(url)
        assert response.status_code == 403, url


@pytest.mark.parametrize("client_name", ["anonymous_client", "user_client"])
def test_default_permissions__anonymous_and_non_staff_users_cannot_act(request, client_name, run):
    client = request.getfixturevalue(client_name)
    for url, body in writes(run):
        response = client.post(url, body, format="json")
        assert response.status_code == 403, url
    # Nothing was started, cancelled or replayed.
    assert list(WorkflowRun.objects.values_list("status", flat=True)) == ["pending"]


def test_default_permissions__anonymous_gets_drf_message(anonymous_client):
    response = anonymous_client.get("/api/runs/")
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_default_permissions__staff_can_read_and_act(staff_client, run):
    for url in [*READS, f"/api/runs/{run.pk}/"]:
        assert staff_client.get(url).status_code == 200, url
    statuses = [
        staff_client.post(url, body, format="json").status_code for url, body in writes(run)
    ]
    assert statuses == [201, 200, 201]


READ_ONLY_FOR_USERS = {
    "API_READ_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "API_WRITE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
}


@override_settings(SQUIDMESH=READ_ONLY_FOR_USERS)
def test_separate_permissions__authenticated_users_read_but_only_staff_act(
    user_client, staff_client, anonymous_client, run
):
    for url in [*READS, f"/api/runs/{run.pk}/"]:
        assert user_client.get(url).status_code == 200, url
        assert anonymous_client.get(url).status_code == 403, url
    for url, body in writes(run):
        assert user_client.post(url, body, format="json").status_code == 403, url
    assert staff_client.post(f"/api/runs/{run.pk}/cancel/").status_code == 200


@override_settings(
    SQUIDMESH={
        "API_READ_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
        "API_WRITE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }
)
def test_separate_permissions__write_classes_alone_govern_actions(user_client):
    started = user_client.post("/api/runs/", {"workflow": "tests.three_steps"}, format="json")

    assert started.status_code == 201
    assert user_client.get(started.json()["url"]).status_code == 403


def test_browsable_api_form_needs_write_permission(user_client, staff_client):
    with override_settings(SQUIDMESH=READ_ONLY_FOR_USERS):
        user_page = user_client.get("/api/runs/", HTTP_ACCEPT="text/html")
    staff_page = staff_client.get("/api/runs/", HTTP_ACCEPT="text/html")

    assert user_page.status_code == staff_page.status_code == 200
    assert b'id="post-object-form"' not in user_page.content
    assert b'id="post-object-form"' in staff_page.content
    for field in [b'name="workflow"', b'name="trigger"', b'name="payload"']:
        assert field in staff_page.content


class HideCompletedRuns(BasePermission):
    """An object-level policy a project might configure."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_staff)

    def has_object_permission(self, request, view, obj):
        return obj.status != "completed"


@override_settings(
    SQUIDMESH={
        "API_READ_PERMISSION_CLASSES": [f"{__name__}.HideCompletedRuns"],
        "API_WRITE_PERMISSION_CLASSES": [f"{__name__}.HideCompletedRuns"],
    }
)
def test_object_permissions__apply_to_detail_and_actions(staff_client, run):
    from squidmesh.testing import drain

    assert staff_client.get(f"/api/runs/{run.pk}/").status_code == 200
    drain()

    assert staff_client.get(f"/api/runs/{run.pk}/").status_code == 403
    assert staff_client.post(f"/api/runs/{run.pk}/replay/").status_code == 403
    assert WorkflowRun.objects.count() == 1


@override_settings(SQUIDMESH={"API_READ_PERMISSION_CLASSES": ["no.such.Permission"]})
def test_misconfigured_permission_names_the_setting(staff_client):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="API_READ_PERMISSION_CLASSES"):
        staff_client.get("/api/runs/")


# -- the admin's model permissions (the default) -------------------------------


def detail_reads(run):
    return [*READS, f"/api/runs/{run.pk}/", "/api/cron-triggers/"]


def test_model_permissions__staff_without_squidmesh_permissions_gets_403_everywhere(
    unpermitted_staff_client, run
):
    # Once, any staff user read every payload and could start, cancel and replay.
    for url in detail_reads(run):
        assert unpermitted_staff_client.get(url).status_code == 403, url
    for url, body in writes(run):
        assert unpermitted_staff_client.post(url, body, format="json").status_code == 403, url
    assert list(WorkflowRun.objects.values_list("status", flat=True)) == ["pending"]


def test_model_permissions__view_only_reads_but_cannot_start_cancel_or_replay(viewer_client, run):
    for url in detail_reads(run):
        assert viewer_client.get(url).status_code == 200, url
    for url, body in writes(run):
        assert viewer_client.post(url, body, format="json").status_code == 403, url
    assert list(WorkflowRun.objects.values_list("status", flat=True)) == ["pending"]


@pytest.mark.parametrize(
    ("permission", "allowed"),
    [("start", "/api/runs/"), ("cancel", "/cancel/"), ("replay", "/replay/")],
)
def test_model_permissions__each_action_needs_its_own_permission(permission, allowed, run):
    from tests.contrib.rest_framework.conftest import client_for, staff_user

    client = client_for(staff_user("acting", permission))
    for url, body in writes(run):
        status = client.post(url, body, format="json").status_code
        assert (status < 400) == url.endswith(allowed), (url, status)


def test_model_permissions__superuser_passes_without_explicit_permissions(superuser_client, run):
    for url in detail_reads(run):
        assert superuser_client.get(url).status_code == 200, url
    statuses = [
        superuser_client.post(url, body, format="json").status_code for url, body in writes(run)
    ]
    assert statuses == [201, 200, 201]


def test_model_permissions__non_staff_user_with_permissions_is_refused_like_in_the_admin(run):
    from django.contrib.auth.models import User

    from tests.contrib.rest_framework.conftest import RUN_PERMISSIONS, client_for, staff_user

    user = staff_user("api-client", *RUN_PERMISSIONS)
    User.objects.filter(pk=user.pk).update(is_staff=False)
    user.refresh_from_db()
    assert client_for(user).get("/api/runs/").status_code == 403


@override_settings(
    SQUIDMESH={
        "API_READ_PERMISSION_CLASSES": [
            "squidmesh.contrib.rest_framework.permissions.RunModelPermissions"
        ],
        "API_WRITE_PERMISSION_CLASSES": [
            "squidmesh.contrib.rest_framework.permissions.RunModelPermissions"
        ],
    }
)
def test_model_permissions__alone_admit_a_non_staff_service_account(run):
    from django.contrib.auth.models import User

    from tests.contrib.rest_framework.conftest import client_for, staff_user

    user = staff_user("service", "view", "start")
    User.objects.filter(pk=user.pk).update(is_staff=False)
    user.refresh_from_db()
    client = client_for(user)
    assert client.get("/api/runs/").status_code == 200
    assert (
        client.post("/api/runs/", {"workflow": "tests.three_steps"}, format="json").status_code
        == 201
    )
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 403


def test_model_permissions__browsable_form_and_options_follow_the_start_permission(
    viewer_client, staff_client
):
    assert (
        b'id="post-object-form"'
        not in viewer_client.get("/api/runs/", HTTP_ACCEPT="text/html").content
    )
    assert "actions" not in viewer_client.options("/api/runs/").json()
    assert "POST" in staff_client.options("/api/runs/").json()["actions"]


def test_model_permissions__cost_two_queries_per_request_of_a_non_superuser(run):
    # Django's ModelBackend loads the user's and the groups' permissions once per
    # user object, i.e. once per request; the admin pays the same.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.contrib.rest_framework.conftest import client_for, staff_user

    warm = staff_user("warm", "view")
    cold = staff_user("cold", "view")
    cold = type(cold).objects.get(pk=cold.pk)  # a fresh object, as each request loads
    counts = []
    for user in (warm, cold):
        with CaptureQueriesContext(connection) as captured:
            assert client_for(user).get(f"/api/runs/{run.pk}/").status_code == 200
        counts.append(len(captured))
    assert counts[1] - counts[0] == 2
