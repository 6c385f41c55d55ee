"""Definition-time validation of a workflow's graph, triggers and steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from squidmesh.workflow.steps import COMPLETE, Step
from squidmesh.workflow.triggers import CronTrigger, Trigger

__all__ = ["CHECK_IDS", "Problem", "find_entry_steps", "validate_definition"]


class Problem(NamedTuple):
    check_id: str
    message: str
    hint: str = ""


#: Every definition check id with a one-line meaning (documented in docs/reference).
CHECK_IDS = {
    "squidmesh.E001": "the workflow declares no steps",
    "squidmesh.E002": "no entry step: every step is the target of a transition",
    "squidmesh.E003": "several entry steps: more than one step has no transition leading to it",
    "squidmesh.E004": "a transition targets an unknown step",
    "squidmesh.E005": "a step cannot be reached from the entry step",
    "squidmesh.E006": "the transitions form a cycle",
    "squidmesh.E007": "two workflows are registered under the same name",
    "squidmesh.E008": "a cron trigger has an invalid expression or time zone",
    "squidmesh.E009": "a payload default does not match its field type",
    "squidmesh.E010": "a step timeout the django-q2 lease (`Q_CLUSTER['retry']`) cannot cover",
    "squidmesh.E011": (
        "triggers are missing, duplicated, more than one is the default, "
        "or a cron trigger is the default"
    ),
    "squidmesh.E012": "a step is not runnable (not callable, bad retry policy or timeout)",
    "squidmesh.E013": "Q_CLUSTER settings that break squidmesh's delivery guarantees",
    "squidmesh.E014": "the SQUIDMESH settings are invalid",
    "squidmesh.E015": "the workflow name is not a non-empty string",
    "squidmesh.E016": "a cron trigger's payload has a required field without a default",
    "squidmesh.E017": "a step is named like a Workflow attribute (get_trigger, describe, ...)",
}


def find_entry_steps(steps: Mapping[str, Step]) -> list[str]:
    """Return the steps no transition leads to, in declaration order."""
    targets = {target for step in steps.values() for target in step.transitions().values()}
    return [name for name in steps if name not in targets]


def validate_definition(
    name: object, steps: Mapping[str, Step], triggers: Sequence[Trigger]
) -> list[Problem]:
    """Return every problem of a workflow definition (empty when it is valid)."""
    problems: list[Problem] = []
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem("squidmesh.E015", f"name {name!r} must be a non-empty string"))
    problems += _trigger_problems(triggers)
    if not steps:
        problems.append(
            Problem("squidmesh.E001", "declares no steps", "Add at least one `Step` attribute.")
        )
        return problems
    for step in steps.values():
        for message in step.definition_errors():
            problems.append(Problem("squidmesh.E012", f"step {step.name!r}: {message}"))
    unknown = False
    for step in steps.values():
        for outcome, target in step.transitions().items():
            if target != COMPLETE and target not in steps:
                unknown = True
                problems.append(
                    Problem(
                        "squidmesh.E004",
                        f"step {step.name!r} transitions on {outcome} to unknown step {target!r}",
                        f"Use one of {', '.join(sorted(steps))} or {COMPLETE!r}.",
                    )
                )
    entries = find_entry_steps(steps)
    if not entries:
        problems.append(
            Problem(
                "squidmesh.E002",
                "has no entry step: every step is the target of a transition",
                "Exactly one step must have no transition leading to it.",
            )
        )
    elif len(entries) > 1:
        problems.append(
            Problem(
                "squidmesh.E003",
                f"has several entry steps: {', '.join(entries)}",
                "Connect them with on_ok/on_error so that exactly one step starts the run.",
            )
        )
    if not unknown:
        problems += _graph_problems(steps, entries)
    return problems


def _trigger_problems(triggers: Sequence[Trigger]) -> list[Problem]:
    problems: list[Problem] = []
    if not triggers:
        return [
            Problem(
                "squidmesh.E011",
                "declares no triggers",
                "Add `triggers = [squidmesh.manual()]` (or a cron trigger).",
            )
        ]
    seen: set[str] = set()
    for trigger in triggers:
        if not isinstance(trigger, Trigger):
            problems.append(Problem("squidmesh.E011", f"{trigger!r} is not a trigger"))
            continue
        if trigger.name in seen:
            problems.append(
                Problem("squidmesh.E011", f"trigger name {trigger.name!r} is used twice")
            )
        seen.add(trigger.name)
        if isinstance(trigger, CronTrigger):
            for cron_error in trigger.definition_errors():
                problems.append(
                    Problem(
                        "squidmesh.E008",
                        f"trigger {trigger.name!r}: {cron_error}",
                        "Use five cron fields, e.g. '0 3 * * *', and an IANA zone such as "
                        "'Europe/Paris'.",
                    )
                )
            for field in trigger.payload.declared_fields.values():
                if field.required and not field.has_default():
                    # A tick starts its run with the payload defaults only.
                    problems.append(
                        Problem(
                            "squidmesh.E016",
                            f"cron trigger {trigger.name!r}: payload field {field.name!r} is "
                            "required and has no default, so no tick could ever start a run",
                            "Give the field a default or declare it with required=False.",
                        )
                    )
        for field in trigger.payload.declared_fields.values():
            message = field.default_error()
            if message:
                problems.append(
                    Problem(
                        "squidmesh.E009",
                        f"trigger {trigger.name!r}: default {field.default!r} of field "
                        f"{field.name!r} {message}",
                    )
                )
    for trigger in triggers:
        if isinstance(trigger, CronTrigger) and trigger.default:
            problems.append(
                Problem(
                    "squidmesh.E011",
                    f"cron trigger {trigger.name!r} is marked default=True, but a start "
                    "without a trigger name never defaults to a cron trigger",
                    "Remove default=True, or mark a manual trigger as the default.",
                )
            )
    defaults = [t.name for t in triggers if isinstance(t, Trigger) and t.default]
    if len(defaults) > 1:
        problems.append(
            Problem(
                "squidmesh.E011",
                f"several default triggers: {', '.join(defaults)}",
                "Mark at most one trigger with default=True.",
            )
        )
    return problems


def _graph_problems(steps: Mapping[str, Step], entries: list[str]) -> list[Problem]:
    problems: list[Problem] = []
    if entries:
        reachable = _reach(steps, entries[0])
        unreachable = [name for name in steps if name not in reachable]
        if unreachable:
            problems.append(
                Problem(
                    "squidmesh.E005",
                    f"steps {', '.join(unreachable)} cannot be reached from entry step "
                    f"{entries[0]!r}",
                    "Add a transition leading to them or remove them.",
                )
            )
    cycle = _find_cycle(steps)
    if cycle:
        problems.append(
            Problem(
                "squidmesh.E006",
                f"transitions form a cycle: {' -> '.join(cycle)}",
                "Each step runs at most once per run; express repetition with retries.",
            )
        )
    return problems


def _successors(step: Step) -> list[str]:
    return [target for target in step.transitions().values() if target != COMPLETE]


def _find_cycle(steps: Mapping[str, Step]) -> list[str] | None:
    """Return one cycle as a closed path of step names, or None."""
    # Each step runs at most once per run (unique (run, step)), so a loop in
    # the graph could never be executed as written.
    done: set[str] = set()
    for start in steps:
        path: list[str] = []
        stack = [(start, iter(_successors(steps[start])))]
        on_path = {start}
        path.append(start)
        while stack:
            node, successors = stack[-1]
            advanced = False
            for target in successors:
                if target in on_path:
                    return [*path[path.index(target) :], target]
                if target not in done:
                    stack.append((target, iter(_successors(steps[target]))))
                    on_path.add(target)
                    path.append(target)
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                on_path.discard(node)
                path.pop()
                done.add(node)
    return None


def _reach(steps: Mapping[str, Step], entry: str) -> set[str]:
    seen: set[str] = set()
    stack = [entry]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack += _successors(steps[node])
    return seen
