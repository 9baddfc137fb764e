"""The shape of the house: no import circle (``TYPE_CHECKING`` imports included) and a contract that
imports nothing of the machinery. (Test tooling only inside packages named ``testing``: test_host.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hostspec", "recon_plugin")
CONTRACT = {"hostspec.markers", "hostspec.errors", "hostspec.model", "hostspec.broker", "hostspec.store",
            "hostspec.config", "hostspec.commands", "hostspec.host", "hostspec.hookspecs", "hostspec.events",
            "hostspec.codec"}
MACHINERY = {"hostspec.manager", "hostspec.app", "hostspec.cli", "hostspec.console"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every project module ``path`` imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found |= {name for name in names if name in known}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, if there is any (depth-first search; a package's ``__init__`` importing
    its own submodules is not a circle unless a submodule imports the package back)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_including_type_checking_imports() -> None:
    graph = _graph()
    # a package importing its own submodules (hostspec/__init__) is the package's public face, not a
    # circle: drop those edges, and keep the submodules' imports of one another
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_circle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", sorted(CONTRACT))
def test_the_contract_imports_nothing_of_the_machinery(module: str) -> None:
    graph = _graph()
    if module not in graph:
        pytest.skip(f"{module} does not exist")
    reachable, todo = set(), [module]
    while todo:
        for nxt in graph[todo.pop()] - reachable:
            reachable.add(nxt)
            todo.append(nxt)
    assert not reachable & (MACHINERY | {m for m in graph if m.startswith("recon_plugin")})
