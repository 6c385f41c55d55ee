"""Who may read and who may act through the API: `SQUIDMESH['API_*_PERMISSION_CLASSES']`."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from squidmesh.conf import settings

__all__ = ["permissions_for"]


def permissions_for(request: Request) -> list[BasePermission]:
    """Return the permission instances that apply to `request`.

    Safe methods (GET, HEAD, OPTIONS) are reads and get
    `API_READ_PERMISSION_CLASSES`; everything else (starting, cancelling,
    replaying a run) is an action and gets `API_WRITE_PERMISSION_CLASSES`
    alone, so the two can be granted to different users.
    """
    if request.method in SAFE_METHODS:
        classes = settings.API_READ_PERMISSION_CLASSES
    else:
        classes = settings.API_WRITE_PERMISSION_CLASSES
    if not isinstance(classes, list | tuple):
        classes = [classes]
    return [permission() for permission in classes]
