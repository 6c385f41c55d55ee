"""The subcommands of `manage.py squidmesh`, one module per group.

Each module has `add_parsers(subcommands)`, adding its subcommands' parsers,
and `HANDLERS`, mapping a subcommand's name to `handler(command, **options)`.
`squidmesh.management.commands.squidmesh.Command` adds the parsers in the
order of `GROUPS` (the order `--help` lists them) and dispatches to the handler.
"""

from squidmesh.management.subcommands import maintenance, runs, workflows

#: Run operations, then maintenance, then workflow definitions.
GROUPS = (runs, maintenance, workflows)

__all__ = ["GROUPS"]
