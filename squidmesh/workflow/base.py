"""The `Workflow` base class: a declarative, class-based workflow definition."""

from __future__ import annotations

import re
from typing import Any, ClassVar, cast

from squidmesh.exceptions import UnknownTrigger, WorkflowDefinitionError
from squidmesh.workflow.steps import COMPLETE, Step
from squidmesh.workflow.triggers import CronTrigger, Trigger
from squidmesh.workflow.validation import Problem, find_entry_steps, validate_definition

__all__ = ["Workflow"]


def _default_name(cls: type) -> str:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    module = cls.__module__
    try:
        from django.apps import apps

        config = apps.get_containing_app_config(module) if apps.apps_ready else None
    except Exception:  # the app registry is optional at import time
        config = None
    prefix = config.label if config else module.rsplit(".", 1)[0]
    return f"{prefix}.{snake}"


class WorkflowMeta(type):
    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> WorkflowMeta:
        created = super().__new__(mcs, name, bases, namespace, **kwargs)
        if not any(isinstance(base, WorkflowMeta) for base in bases):
            return created  # the Workflow base class itself
        # Every other class made here is a Workflow subclass: type its attributes.
        cls = cast("type[Workflow]", created)
        if namespace.get("abstract", False):
            cls.abstract = True
            return cls
        cls.abstract = False
        steps: dict[str, Step] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, Step):
                    value.name = attr
                    steps[attr] = value
        cls.steps = steps
        triggers = getattr(cls, "triggers", [])
        # A step called "triggers" replaced the list; E017 reports it.
        cls.triggers = [] if isinstance(triggers, Step) else list(triggers or [])
        if "name" not in namespace:
            cls.name = _default_name(cls)
        problems = _reserved_name_problems(steps) + validate_definition(
            cls.name, steps, cls.triggers
        )
        if problems:
            label = cls.name if isinstance(cls.name, str) and cls.name else name
            raise WorkflowDefinitionError(label, problems)
        cls.entry_step = find_entry_steps(steps)[0]
        return cls


class Workflow(metaclass=WorkflowMeta):
    """Base class of workflow definitions.

    Declare triggers in `triggers`, steps as class attributes, transitions
    with each step's `on_ok` / `on_error`::

        @squidmesh.register
        class Onboarding(squidmesh.Workflow):
            name = "accounts.onboarding"
            triggers = [squidmesh.manual(payload={"email": fields.String()})]

            create_account = squidmesh.Step(create_account, on_ok="welcome")
            welcome = squidmesh.log("Welcome {email}")

    Definition errors raise `WorkflowDefinitionError` when the class is
    created. A subclass with `abstract = True` is not validated.
    """

    name: ClassVar[str]
    abstract: ClassVar[bool] = True
    triggers: ClassVar[list[Trigger]] = []
    steps: ClassVar[dict[str, Step]]
    entry_step: ClassVar[str]

    def __init__(self) -> None:
        raise TypeError("Workflows are declarations; start them with squidmesh.start_run().")

    @classmethod
    def default_trigger(cls) -> Trigger:
        """Return the trigger a start without a trigger name uses.

        That is the trigger marked `default=True`, else the first declared
        that is not a cron trigger: a manual start never passes for a tick
        of a schedule. Raise `UnknownTrigger` if every trigger is a cron
        trigger; such a run must name its trigger.
        """
        manual = [t for t in cls.triggers if not isinstance(t, CronTrigger)]
        chosen = next((t for t in manual if t.default), manual[0] if manual else None)
        if chosen is None:
            raise UnknownTrigger(cls.name, None, [t.name for t in cls.triggers])
        return chosen

    @classmethod
    def get_trigger(cls, name: str | None) -> Trigger:
        """Return the trigger called `name` (the default one for None, see `default_trigger`).

        Raise `UnknownTrigger` if there is none.
        """
        if name is None:
            return cls.default_trigger()
        for trigger in cls.triggers:
            if trigger.name == name:
                return trigger
        raise UnknownTrigger(cls.name, name, [t.name for t in cls.triggers])

    @classmethod
    def next_step(cls, step: str, outcome: str) -> str | None:
        """Return the step that follows `step` on `outcome` ("ok"/"error"), `COMPLETE`, or None."""
        return cls.steps[step].transitions().get(outcome)

    @classmethod
    def ordered_steps(cls) -> list[Step]:
        """Return steps in execution order along ok transitions, then the rest."""
        order: list[str] = []
        node: str | None = cls.entry_step
        while node and node != COMPLETE and node not in order:
            order.append(node)
            node = cls.steps[node].on_ok
        order += [name for name in cls.steps if name not in order]
        return [cls.steps[name] for name in order]

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Return the definition as JSON-ready data (admin, REST API, commands)."""
        return {
            "name": cls.name,
            "description": (cls.__doc__ or "").strip().split("\n")[0],
            "entry_step": cls.entry_step,
            "triggers": [trigger.describe() for trigger in cls.triggers],
            "steps": [step.describe() for step in cls.ordered_steps()],
        }


#: Names a step may not take: a step attribute would shadow the `Workflow`
#: attribute the engine, admin and API call (`start_run` calls
#: `get_trigger`, the admin `describe`), which then fails with a TypeError far
#: from the definition.
RESERVED_STEP_NAMES = frozenset(
    {"name", "abstract", "triggers", "steps", "entry_step"}
    | {attr for attr in vars(Workflow) if not attr.startswith("_")}
)


def _reserved_name_problems(steps: dict[str, Step]) -> list[Problem]:
    return [
        Problem(
            "squidmesh.E017",
            f"step {step!r} has the name of a Workflow attribute, which it would hide",
            f"Rename the step; reserved names: {', '.join(sorted(RESERVED_STEP_NAMES))}.",
        )
        for step in steps
        if step in RESERVED_STEP_NAMES
    ]
