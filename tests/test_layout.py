"""The package's shape (DESIGN.md section 5): imports one way, small modules, public API only.

Read from the source with `ast`, nothing imported: every ``import`` counts, also inside a
function, except those under ``if TYPE_CHECKING:`` (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "vdgexport"
MAX_LINES = 400
#: Modules that use the public API only: ``vdgexport``, ``vdgexport.testing`` and their own
#: package, never a ``vdgexport._private`` module or name.
CLIENTS = ("vdgexport.cli", "vdgexport.web", "vdgexport.fleet", "vdgexport._sync")
#: Modules on main over the limit that their owners are splitting (TEAM.md); delete an entry
#: once it is fixed.
#: Public-API users that the package itself re-exports (``vdgexport.SyncClient``). They
#: import the package back; that is a re-export, not a layering cycle (the package is always
#: imported before any of its modules), so the package's edge to them is not counted.
REEXPORTED = {"vdgexport._sync"}
KNOWN_LONG = {"testing/_simulator.py"}


@dataclass(frozen=True)
class Import:
    """One imported module (``name``), or one name from it (``name`` is then the module)."""

    module: str
    name: str
    imported: str | None  # the name taken with ``from module import name``
    line: int
    runtime: bool


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    hidden: set[ast.AST] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, (ast.Name, ast.Attribute)) and ast.unparse(test).endswith(
            "TYPE_CHECKING"
        ):
            for child in node.body:
                hidden.update(ast.walk(child))
    return hidden


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    """What module ``name`` imports, resolved to the package's modules where it can be."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = _type_checking_only(tree)
    for node in ast.walk(tree):
        runtime = node not in hidden
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, alias.name, None, node.lineno, runtime)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                target = sub if sub in known else module
                yield Import(target, module, alias.name, node.lineno, runtime)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports at run time."""
    known = modules()
    return {
        name: {
            i.module
            for i in imports_of(name, path, known)
            if i.runtime
            and i.module in known
            and i.module != name
            and not (name == "vdgexport" and i.module in REEXPORTED)
        }
        for name, path in known.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_private(dotted: str, owner: str) -> bool:
    """Whether ``dotted`` names something private of vdgexport outside ``owner``'s package."""
    if dotted == owner or dotted.startswith(owner + "."):
        return False
    parts = dotted.split(".")[1:]
    return dotted.startswith("vdgexport.") and any(
        p.startswith("_") and not (p.startswith("__") and p.endswith("__")) for p in parts
    )


def private_imports() -> list[str]:
    """Every import of a private module or name by a module that must use the public API."""
    known = modules()
    found = []
    for name, path in known.items():
        owner = next((c for c in CLIENTS if name == c or name.startswith(c + ".")), None)
        if owner is None:
            continue
        for i in imports_of(name, path, known):
            taken = f"{i.name}.{i.imported}" if i.imported else i.name
            if _is_private(i.name, owner) or _is_private(taken, owner):
                found.append(f"{path.relative_to(ROOT.parent)}:{i.line} imports {taken}")
    return found


def test_no_import_cycle_in_the_package() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_every_module_is_at_most_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in ROOT.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert {p: n for p, n in long.items() if p not in KNOWN_LONG} == {}


def test_command_line_relay_fleet_and_sync_use_the_public_api_only() -> None:
    assert private_imports() == []


def test_the_command_line_is_not_imported_by_the_library() -> None:
    graph = import_graph()
    core = [m for m in graph if not m.startswith(("vdgexport.cli", "vdgexport.__main__"))]
    assert [m for m in core if any(t.startswith("vdgexport.cli") for t in graph[m])] == []


# -- the checks themselves ------------------------------------------------------------------


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("dotted", "owner", "private"),
    [
        ("vdgexport._client", "vdgexport.cli", True),
        ("vdgexport.testing._clock", "vdgexport.cli", True),
        ("vdgexport._events.TERMINAL_TYPES", "vdgexport.cli", True),
        ("vdgexport.Client", "vdgexport.cli", False),
        ("vdgexport.testing.SenseSimulator", "vdgexport.cli", False),
        ("vdgexport.cli._helpers", "vdgexport.cli", False),
        ("vdgexport.web._app", "vdgexport.cli", True),
        ("vdgexport._client", "vdgexport._sync", True),
        ("vdgexport.__version__", "vdgexport.cli", False),
    ],
)
def test_private_names_are_told_apart(dotted: str, owner: str, private: bool) -> None:
    assert _is_private(dotted, owner) is private


def test_type_checking_imports_do_not_count_but_function_imports_do(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .b import B\n"
        "def f():\n    from .c import C\n"
    )
    path = tmp_path / "a.py"
    path.write_text(source)
    known = {"pkg.a": path, "pkg.b": path, "pkg.c": path}
    found = {(i.module, i.runtime) for i in imports_of("pkg.a", path, known)}
    assert found == {("typing", True), ("pkg.b", False), ("pkg.c", True)}
