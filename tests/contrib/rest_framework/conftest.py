import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

import squidmesh
from squidmesh import Step
from squidmesh.registry import registry


@pytest.fixture
def staff_client(db):
    client = APIClient()
    client.force_authenticate(User.objects.create_user("operator", is_staff=True))
    return client


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
