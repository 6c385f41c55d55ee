"""`RunAdminMixinBase`: what the mixins of `WorkflowRunAdmin` may rely on, for the type checker."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["RunAdminMixinBase"]

if TYPE_CHECKING:
    from django.contrib import admin
    from django.http import HttpRequest

    from squidmesh.models import WorkflowRun

    class RunAdminMixinBase(admin.ModelAdmin[WorkflowRun]):
        """`WorkflowRunAdmin` as its mixins see it, so `self.opts` and `super()` are checked."""

        # Defined by RunActionsMixin, read by RunDetailMixin.
        def has_cancel_permission(
            self, request: HttpRequest, obj: WorkflowRun | None = None
        ) -> bool: ...

        def has_replay_permission(
            self, request: HttpRequest, obj: WorkflowRun | None = None
        ) -> bool: ...

else:
    # At run time a plain class: `ModelAdmin` is not subscriptable, and
    # `WorkflowRunAdmin` lists `admin.ModelAdmin` as its real base.
    RunAdminMixinBase = object
