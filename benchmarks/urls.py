"""Benchmark URLs: the admin, and the REST API when `squidmesh.contrib.rest_framework` exists."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls)]

try:
    import squidmesh.contrib.rest_framework.urls  # noqa: F401 - on the `rest` branch
except ImportError:
    pass  # the history section reports the REST list as "n/a"
else:
    urlpatterns.append(path("api/", include("squidmesh.contrib.rest_framework.urls")))
