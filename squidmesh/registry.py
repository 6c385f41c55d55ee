"""The workflow registry: register, look up and autodiscover workflows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, overload

from squidmesh.exceptions import (
    AlreadyRegistered,
    UnknownWorkflow,
    WorkflowDefinitionError,
)

if TYPE_CHECKING:
    from squidmesh.workflow.base import Workflow

__all__ = ["WorkflowRegistry", "register", "registry"]

W = TypeVar("W", bound="Workflow")


class WorkflowRegistry:
    """Workflows by their stable registered name, like `admin.site` for models."""

    def __init__(self) -> None:
        self._workflows: dict[str, type[Workflow]] = {}
        #: Definition errors met while autodiscovering, reported by `manage.py check`.
        self.definition_errors: list[WorkflowDefinitionError] = []

    def register(self, workflow: type[Workflow]) -> type[Workflow]:
        """Register `workflow` under `workflow.name` and return it.

        Raise `AlreadyRegistered` if another class holds the name.
        """
        from squidmesh.workflow.base import Workflow

        if not (isinstance(workflow, type) and issubclass(workflow, Workflow)):
            raise TypeError(f"{workflow!r} is not a squidmesh.Workflow subclass")
        if workflow.abstract:
            raise TypeError(f"{workflow.__qualname__} is abstract and cannot be registered")
        existing = self._workflows.get(workflow.name)
        if existing is not None and _qualified(existing) != _qualified(workflow):
            raise AlreadyRegistered(
                workflow.name,
                [
                    (
                        "squidmesh.E007",
                        f"name {workflow.name!r} is registered by {_qualified(existing)} "
                        f"and again by {_qualified(workflow)}",
                        "Give one of them a different `name`.",
                    )
                ],
            )
        # Re-registering the same class (module reloaded) replaces it.
        self._workflows[workflow.name] = workflow
        return workflow

    def unregister(self, workflow: type[Workflow] | str) -> None:
        name = workflow if isinstance(workflow, str) else workflow.name
        if name not in self._workflows:
            raise UnknownWorkflow(name)
        del self._workflows[name]

    def get(self, workflow: type[Workflow] | str) -> type[Workflow]:
        """Return the registered workflow for a name or class.

        Raise `UnknownWorkflow` if it is not registered. A class counts as
        registered only if it is the registered definition of its name: an
        unregistered class that happens to share a name with a registered one
        must not run the other class's steps.
        """
        if isinstance(workflow, str):
            name = workflow
        else:
            class_name = getattr(workflow, "name", None)
            if not isinstance(class_name, str):
                raise UnknownWorkflow(repr(workflow))
            name = class_name
        found = self._workflows.get(name)
        if found is None:
            raise UnknownWorkflow(name)
        if not isinstance(workflow, str) and _qualified(found) != _qualified(workflow):
            raise UnknownWorkflow(_qualified(workflow))
        return found

    def is_registered(self, name: str) -> bool:
        return name in self._workflows

    def all(self) -> list[type[Workflow]]:
        """Return registered workflows sorted by name."""
        return [self._workflows[name] for name in sorted(self._workflows)]

    def names(self) -> list[str]:
        return sorted(self._workflows)

    def autodiscover(self, module_name: str = "workflows") -> None:
        """Import `workflows.py` of every installed app.

        A `WorkflowDefinitionError` is kept in `definition_errors` (reported
        by `manage.py check`) so one bad workflow does not hide the others;
        any other error in a user's module propagates.
        """
        from importlib import import_module

        from django.apps import apps
        from django.utils.module_loading import module_has_submodule

        self.definition_errors = []
        for app_config in apps.get_app_configs():
            if not module_has_submodule(app_config.module, module_name):
                continue
            try:
                import_module(f"{app_config.name}.{module_name}")
            except WorkflowDefinitionError as error:
                self.definition_errors.append(error)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


registry = WorkflowRegistry()


@overload
def register(workflow: type[W], *, to: WorkflowRegistry | None = None) -> type[W]: ...
@overload
def register(
    workflow: None = None, *, to: WorkflowRegistry | None = None
) -> Callable[[type[W]], type[W]]: ...
def register(
    workflow: type[W] | None = None, *, to: WorkflowRegistry | None = None
) -> type[W] | Callable[[type[W]], type[W]]:
    """Class decorator registering a workflow (in `registry` unless `to` is given)."""

    def decorate(cls: type[W]) -> type[W]:
        (to or registry).register(cls)
        return cls

    return decorate(workflow) if workflow is not None else decorate
