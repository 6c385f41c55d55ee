"""`manage.py squidmesh`: start, list, inspect, cancel and replay runs; list and describe workflows.

The subcommands live in `squidmesh.management.subcommands`; this module
parses the command line, makes every output stream escape control
characters, dispatches to the subcommand and turns refusals into exit status 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from squidmesh.exceptions import InvalidPayload, SquidmeshError, UnknownWorkflow
from squidmesh.management.subcommands import GROUPS
from squidmesh.management.terminal import EscapingOutputWrapper
from squidmesh.registry import registry


class SubcommandParser(CommandParser):
    """Accept options between and after `FIELD=VALUE` arguments.

    Plain argparse gives up on `start WORKFLOW --trigger T a=1` (the
    positionals after an option are "unrecognized"); intermixed parsing reads
    it as meant. The flag keeps argparse's own inner calls on the plain path.
    """

    _intermixing = False

    def error(self, message: str) -> NoReturn:
        # One line on the command line (exit status 2): the usage synopsis
        # of a subcommand spans several lines and buries the message.
        if self.called_from_command_line:
            self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
        super().error(message)  # raises CommandError
        # django-stubs types CommandParser.error as returning.
        raise AssertionError("CommandParser.error returned")

    # `namespace: Any` matches each of argparse's overloads (a given namespace
    # class is returned filled in).
    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


class Command(BaseCommand):
    help = (
        "Operate squidmesh workflows: start, runs, inspect, cancel, replay, recover, relay, "
        "prune, workflows, describe. "
        "`manage.py squidmesh SUBCOMMAND --help` explains each one. "
        "Exit status: 0 done, 1 refused (bad input, unknown workflow or run, action not "
        "allowed), 2 usage error, 3 a waited run failed or was cancelled, 4 --wait timed out, "
        "130 --wait interrupted."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        subcommands = parser.add_subparsers(
            dest="subcommand", metavar="SUBCOMMAND", required=True, parser_class=SubcommandParser
        )
        for group in GROUPS:
            group.add_parsers(subcommands)

    # Every stream the command writes to escapes control characters: runs
    # carry user-provided strings (payloads, idempotency keys, errors).
    @property
    def stdout(self) -> OutputWrapper:
        return self._stdout

    @stdout.setter
    def stdout(self, wrapper: OutputWrapper) -> None:
        self._stdout = EscapingOutputWrapper(wrapped_stream(wrapper), wrapper.ending)

    @property
    def stderr(self) -> OutputWrapper:
        return self._stderr

    @stderr.setter
    def stderr(self, wrapper: OutputWrapper) -> None:
        self._stderr = EscapingOutputWrapper(wrapped_stream(wrapper), wrapper.ending)

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        handler = next(
            group.HANDLERS[subcommand] for group in GROUPS if subcommand in group.HANDLERS
        )
        with translate_errors():
            handler(self, **options)


def wrapped_stream(wrapper: OutputWrapper) -> TextIO:
    """Return the stream `wrapper` writes to."""
    # django-stubs does not declare `OutputWrapper._out`, so its `__getattr__`
    # types the attribute as a callable.
    return wrapper._out  # type: ignore[return-value]


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn squidmesh's refusals into `CommandError`s: a message and exit status 1."""
    try:
        yield
    except InvalidPayload as error:
        fields = "\n".join(
            f"  {'(payload)' if field == '__all__' else field}: {message}"
            for field, message in error.errors.items()
        )
        raise CommandError(f"Invalid payload:\n{fields}") from None
    except UnknownWorkflow as error:
        known = ", ".join(registry.names()) or "(none)"
        raise CommandError(f"{error} Registered workflows: {known}.") from None
    except SquidmeshError as error:
        raise CommandError(str(error)) from None
