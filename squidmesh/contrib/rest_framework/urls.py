"""URLs of the API: `path("api/", include("squidmesh.contrib.rest_framework.urls"))`."""

from __future__ import annotations

from django.urls import path
from rest_framework import routers

from squidmesh.contrib.rest_framework.permissions import permissions_for
from squidmesh.contrib.rest_framework.schema import SquidmeshSchemaView
from squidmesh.contrib.rest_framework.views import (
    CronTriggerViewSet,
    RunViewSet,
    WorkflowViewSet,
)

app_name = "squidmesh_api"


class SquidmeshRootView(routers.APIRootView):
    """squidmesh: workflow runs and the workflows they run."""

    def get_permissions(self):
        return permissions_for(self.request)


class SquidmeshRouter(routers.DefaultRouter):
    APIRootView = SquidmeshRootView
    # Workflow names contain dots: `workflows/shop.order_fulfilment/` must
    # not be read as a `.order_fulfilment` format suffix.
    include_format_suffixes = False


router = SquidmeshRouter()
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("runs", RunViewSet, basename="run")
router.register("cron-triggers", CronTriggerViewSet, basename="cron-trigger")

urlpatterns = [
    path("schema/", SquidmeshSchemaView.as_view(), name="schema"),
    *router.urls,
]
