"""The package's shape: no import cycle among squidmesh's modules, and no oversized module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "squidmesh"
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
    }


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


#: Modules that import each other when counting imports inside functions too.
#: models.py imports its enums and querysets at the top; they import the
#: models inside functions, as a Django app must before its models load.
LAZY_CYCLES_ALLOWED = [
    {"squidmesh.audit", "squidmesh.models", "squidmesh.querysets", "squidmesh.runtime.dispatcher"},
]


def every_import(tree: ast.Module):
    """Yield every import statement, also those inside functions (run later, lazily)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def module_level_imports(tree: ast.Module):
    """Yield the import statements run when the module is imported.

    Imports inside functions and classes run later, and `if TYPE_CHECKING:`
    blocks never run, so neither can make an import cycle.
    """
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not is_type_checking(node.test):
                pending += node.body
            pending += node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                pending += handler.body
        elif isinstance(node, ast.With):
            pending += node.body


def imported_modules(name: str, path: Path, known: set[str], *, lazy: bool = False) -> set[str]:
    """Return the squidmesh modules `name` imports at module level.

    `from package import name` counts as importing `package.name` when that
    is a module. A package's own `__init__` is not counted as imported by
    its submodules: Python runs it first, but only the submodules it imports
    itself can come back to it.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in every_import(tree) if lazy else module_level_imports(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module
            # import name` imports the module that defines the name.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in targets:
            # The most specific squidmesh module the target names.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for neighbour in sorted(graph.get(node, ())):
            cycle = visit(neighbour)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def import_graph(*, lazy: bool = False) -> dict[str, set[str]]:
    known = modules()
    return {
        name: imported_modules(name, path, set(known), lazy=lazy) for name, path in known.items()
    }


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Return the groups of two or more modules that import each other (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for neighbour in graph.get(node, ()):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_among_squidmesh_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_new_cycle_even_counting_imports_inside_functions():
    # schedules -> recovery/retention -> schedules was such a cycle: each
    # side imported the other inside a function.
    unexpected = [
        sorted(group)
        for group in strongly_connected(import_graph(lazy=True))
        if not any(group <= allowed for allowed in LAZY_CYCLES_ALLOWED)
    ]
    assert not unexpected, f"modules importing each other: {unexpected}"


def test_strongly_connected_groups():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": set(), "d": {"d"}}
    assert strongly_connected(graph) == [{"a", "b"}]


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_module_level_imports_only(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from squidmesh import conf\n"
        "import squidmesh.models\n"
        "if TYPE_CHECKING:\n"
        "    from squidmesh import api\n"
        "def later():\n"
        "    from squidmesh import recovery\n"
    )
    known = {
        "squidmesh",
        "squidmesh.conf",
        "squidmesh.models",
        "squidmesh.api",
        "squidmesh.recovery",
    }
    assert imported_modules("squidmesh.mod", source, known) == {
        "squidmesh.conf",
        "squidmesh.models",
    }


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_the_size_limit(name):
    path = modules()[name]
    relative = path.relative_to(ROOT).as_posix()
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{relative} has {lines} lines (limit {MAX_LINES}): split it"
