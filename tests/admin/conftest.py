"""Users, clients and runs for the admin tests."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

import squidmesh
from squidmesh.testing import drain

CHANGELIST = reverse("admin:squidmesh_workflowrun_changelist")
WORKFLOWS = reverse("admin:squidmesh_workflowrun_workflows")


def detail_url(run):
    return reverse("admin:squidmesh_workflowrun_change", args=[run.pk])


def cancel_url(run):
    return reverse("admin:squidmesh_workflowrun_cancel", args=[run.pk])


def replay_url(run):
    return reverse("admin:squidmesh_workflowrun_replay", args=[run.pk])


def messages_of(response):
    """Return `(level_tag, text)` of the messages shown on a followed response."""
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


def make_staff(django_user_model, username, *codenames):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="squidmesh", codename__in=codenames)
    )
    return user


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator_client(django_user_model):
    """A staff user who may view, cancel and replay runs (not a superuser)."""
    return client_for(
        make_staff(
            django_user_model,
            "operator",
            "view_workflowrun",
            "cancel_workflowrun",
            "replay_workflowrun",
        )
    )


@pytest.fixture
def viewer_client(django_user_model):
    """A staff user who may only view runs."""
    return client_for(make_staff(django_user_model, "viewer", "view_workflowrun"))


@pytest.fixture
def outsider_client(django_user_model):
    """A staff user without any squidmesh permission."""
    return client_for(make_staff(django_user_model, "outsider"))


def completed_run(label="done"):
    run = squidmesh.start_run("tests.three_steps", {"label": label})
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "completed"
    return run


def failed_run():
    """A run whose only step failed terminally on its first attempt."""
    run = squidmesh.start_run("tests.flaky", {"fail_times": 5, "terminal": True})
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "failed"
    return run


def retried_run():
    """A completed run whose step failed once, then succeeded on attempt 2."""
    run = squidmesh.start_run("tests.flaky", {"fail_times": 1})
    drain(include_delayed=True)
    run.refresh_from_db()
    assert run.status == "completed"
    return run


def pending_run(label="waiting"):
    return squidmesh.start_run("tests.three_steps", {"label": label})
