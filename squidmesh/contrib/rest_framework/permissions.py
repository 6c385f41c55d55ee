"""Who may read and who may act through the API: `SQUIDMESH['API_*_PERMISSION_CLASSES']`."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from squidmesh.conf import settings

__all__ = ["RunModelPermissions", "permissions_for"]


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


class RunModelPermissions(BasePermission):
    """Require the Django model permission on `WorkflowRun` that the admin requires.

    Reads need `squidmesh.view_workflowrun`; starting a run
    `squidmesh.start_workflowrun`, cancelling `squidmesh.cancel_workflowrun`,
    replaying `squidmesh.replay_workflowrun`. Active superusers hold every
    permission. Any other unsafe request is refused.
    """

    READ = "view_workflowrun"
    #: Viewset action of an unsafe request → the permission it needs.
    ACTIONS = {
        "create": "start_workflowrun",
        "cancel": "cancel_workflowrun",
        "replay": "replay_workflowrun",
    }

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        # None when DRF's UNAUTHENTICATED_USER is None.
        if user is None or not user.is_authenticated:
            return False
        codename = self.required_permission(request, view)
        return codename is not None and user.has_perm(f"squidmesh.{codename}")

    def required_permission(self, request: Request, view) -> str | None:
        """Return the codename `request` needs on `view`, or None to refuse it."""
        if request.method in SAFE_METHODS:
            return self.READ
        # The route's own action for this method: the browsable API and
        # OPTIONS ask about a POST while `view.action` is "list" or "metadata".
        routes = getattr(view, "action_map", None) or {}
        action = routes.get((request.method or "").lower(), getattr(view, "action", None))
        return self.ACTIONS.get(action) if isinstance(action, str) else None
