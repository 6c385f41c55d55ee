"""`manage.py squidmesh workflows|describe`: the registered workflows and their definitions."""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand

from squidmesh.management.arguments import add_json_argument
from squidmesh.management.subcommands.output import indent, write_json
from squidmesh.management.tables import render_table
from squidmesh.registry import registry
from squidmesh.serialization import workflow_summary

__all__ = ["HANDLERS", "add_parsers"]


def add_parsers(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    workflows = subcommands.add_parser("workflows", help="List registered workflows.")
    add_json_argument(workflows)

    describe = subcommands.add_parser("describe", help="Show a workflow's definition.")
    describe.add_argument("workflow", metavar="WORKFLOW")
    add_json_argument(describe)


def handle_workflows(command: BaseCommand, *, as_json: bool, **options: Any) -> None:
    summaries = [workflow_summary(workflow) for workflow in registry.all()]
    if as_json:
        write_json(command, summaries)
    elif not summaries:
        command.stdout.write("No workflows are registered.")
    else:
        command.stdout.write(
            render_table(
                ["NAME", "TRIGGERS", "STEPS", "DESCRIPTION"],
                [
                    (s["name"], ", ".join(s["triggers"]), len(s["steps"]), s["description"])
                    for s in summaries
                ],
            )
        )


def handle_describe(command: BaseCommand, *, workflow: str, as_json: bool, **options: Any) -> None:
    definition = registry.get(workflow).describe()
    if as_json:
        write_json(command, definition)
        return
    title = definition["name"]
    if definition["description"]:
        title += f" — {definition['description']}"
    lines = [title, f"Entry step: {definition['entry_step']}"]
    for trigger in definition["triggers"]:
        kind = trigger["type"]
        if "expression" in trigger:
            kind += f" {trigger['expression']!r} {trigger['timezone']}"
        lines += [
            "",
            f"Trigger {trigger['name']} ({kind}{', default' if trigger['default'] else ''})",
        ]
        if trigger["payload"]:
            lines += indent(
                render_table(
                    ["FIELD", "TYPE", "REQUIRED", "DEFAULT", "HELP"],
                    [
                        (
                            field["name"],
                            field["type"] + (f" {field['choices']}" if "choices" in field else ""),
                            "yes" if field["required"] else "no",
                            json.dumps(field["default"]) if "default" in field else None,
                            field.get("help_text"),
                        )
                        for field in trigger["payload"]
                    ],
                )
            )
        else:
            lines.append("  (no payload fields)")
    lines += ["", "Steps"]
    lines += indent(
        render_table(
            ["STEP", "KIND", "ON OK", "ON ERROR", "RETRY", "TIMEOUT", "DESCRIPTION"],
            [
                (
                    step["name"],
                    step["kind"],
                    step["on_ok"],
                    step["on_error"],
                    describe_retry(step["retry"]),
                    f"{step['timeout']:g}s" if step["timeout"] else None,
                    step["description"],
                )
                for step in definition["steps"]
            ],
        )
    )
    command.stdout.write("\n".join(lines))


def describe_retry(retry: dict[str, Any]) -> str | None:
    if retry["max_attempts"] <= 1:
        return None
    backoff = f"{retry['backoff_min']:g}-{retry['backoff_max']:g}s"
    return f"{retry['max_attempts']} attempts, {backoff}{' jitter' if retry['jitter'] else ''}"


HANDLERS = {"workflows": handle_workflows, "describe": handle_describe}
