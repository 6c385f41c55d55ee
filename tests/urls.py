from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls)]
urlpatterns += [path("api/", include("squidmesh.contrib.rest_framework.urls"))]
