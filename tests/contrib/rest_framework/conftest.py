import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

import squidmesh
from squidmesh import Step
from squidmesh.registry import registry

RUN_PERMISSIONS = ["view", "start", "cancel", "replay"]


def staff_user(name, *actions):
    """Return a staff user holding `squidmesh.<action>_workflowrun` for each action."""
    from django.contrib.auth.models import Permission

    user = User.objects.create_user(name, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="squidmesh",
            codename__in=[f"{action}_workflowrun" for action in actions],
        )
    )
    # Load the permission cache now, as the first request would (two queries,
    # once per request in production: tests/contrib/rest_framework/
    # test_permissions.py measures it), so query-count tests measure the
    # endpoints alone.
    user.get_all_permissions()
    return user


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def staff_client(db):
    """A staff operator holding every run permission (view, start, cancel, replay)."""
    return client_for(staff_user("operator", *RUN_PERMISSIONS))


@pytest.fixture
def viewer_client(db):
    """A staff user who may only view runs."""
    return client_for(staff_user("viewer", "view"))


@pytest.fixture
def unpermitted_staff_client(db):
    """A staff user holding no squidmesh permission."""
    return client_for(staff_user("staff"))


@pytest.fixture
def superuser_client(db):
    return client_for(User.objects.create_superuser("root", "root@example.com", "pw"))


@pytest.fixture
def user_client(db):
    client = APIClient()
    client.force_authenticate(User.objects.create_user("customer"))
    return client


@pytest.fixture
def anonymous_client(db):
    return APIClient()


def _noop(data, ctx):
    return {}


@pytest.fixture
def temporary_workflow():
    """Register workflows for one test (name "tests.temporary"), unregistered afterwards.

    Call with the payload fields; calling again replaces the definition, as
    a deploy that changed the workflow would.
    """

    def define(payload_fields):
        if registry.is_registered("tests.temporary"):
            registry.unregister("tests.temporary")

        class Temporary(squidmesh.Workflow):
            name = "tests.temporary"
            triggers = [squidmesh.manual(payload=payload_fields)]
            only = Step(_noop)

        # A new class of the same qualified name replaces the previous one.
        return registry.register(Temporary)

    yield define
    if registry.is_registered("tests.temporary"):
        registry.unregister("tests.temporary")
