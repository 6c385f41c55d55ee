import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from squidmesh.models import CronTickFailure
from tests.admin.conftest import client_for, make_staff

pytestmark = pytest.mark.django_db

LIST = reverse("admin:squidmesh_crontickfailure_changelist")


@pytest.fixture
def failure():
    return CronTickFailure.objects.create(
        workflow="shop.daily_report",
        trigger="nightly",
        intended_at=timezone.now() - datetime.timedelta(hours=1),
        error={"type": "InvalidPayload", "message": "report_date: this field is required"},
    )


def test_failed_ticks__listed_read_only_with_their_error(admin_client, failure):
    response = admin_client.get(LIST)
    assert response.status_code == 200
    assert "report_date: this field is required" in response.content.decode()
    detail = admin_client.get(reverse("admin:squidmesh_crontickfailure_change", args=[failure.pk]))
    assert detail.status_code == 200
    assert "InvalidPayload" in detail.content.decode()
    assert admin_client.get(reverse("admin:squidmesh_crontickfailure_add")).status_code == 403


def test_failed_ticks__need_the_view_permission(django_user_model, failure):
    assert client_for(make_staff(django_user_model, "nobody")).get(LIST).status_code == 403
    viewer = make_staff(django_user_model, "viewer", "view_crontickfailure")
    assert client_for(viewer).get(LIST).status_code == 200
