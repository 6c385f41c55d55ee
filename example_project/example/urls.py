from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls)]
# The squidmesh REST API (docs/rest-api.md); log in through the admin or
# /api-auth/login/ to use the browsable API.
urlpatterns += [
    path("api/", include("squidmesh.contrib.rest_framework.urls")),
    path("api-auth/", include("rest_framework.urls")),
]
