"""The import graph of ``src/convbench``: no cycles, and the layers of docs/architecture.md.

Every module is parsed with :mod:`ast` (nothing is imported, so no side effects and no torch
start-up). An edge is any ``import`` statement, at module level or inside a function (a lazy
import still ties the two modules together), with relative imports resolved. Two kinds of
reference are not edges: the parent package a submodule import runs implicitly, and names
resolved from strings with ``importlib.import_module`` (the lazy public API tables of
``convbench/__init__.py`` and ``convbench/detection/__init__.py``, which run when a user reads
the attribute, never while a module loads).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "convbench"

# Layers, lowest first; a module may import its own layer and the ones below, never above.
# The root package counts as the ground floor: at import it loads only config and errors
# (the rest of the public API is looked up by name on first use).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("convbench", "convbench.errors", "convbench.registry", "convbench.config",
                "convbench.atomic", "convbench.runlog", "convbench.results")),
    ("components", ("convbench.data", "convbench.models", "convbench.measure",
                    "convbench.store")),
    ("training", ("convbench.training",)),
    ("drivers", ("convbench.compare", "convbench.search", "convbench.analysis",
                 "convbench.report", "convbench.detection", "convbench.inference")),
    # The web app (convbench serve) is a front end like the CLI: it drives the layers below.
    ("cli", ("convbench.cli", "convbench.cli_common", "convbench.cli_transfer",
             "convbench.cli_use", "convbench.detection.cli", "convbench.__main__",
             "convbench.server")),
]

# Known edges that break the rules: (importer, imported module) for an import, (importer,
# module.private_name) for a private name reached across modules. Empty: add one only with a
# comment saying why it cannot be helped and what would remove it.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _package_of(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(importer)
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def imports_of(name: str) -> set[str]:
    """The convbench modules ``name`` imports anywhere in its source."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"), str(MODULES[name]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, node)
            for alias in node.names:
                # `from pkg import sub` imports the submodule pkg.sub when there is one
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def layer_of(name: str) -> int:
    best, level = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    assert level is not None, f"{name} is in no layer: add it to LAYERS"
    return level


def violations() -> set[tuple[str, str]]:
    return {(a, b) for a, targets in GRAPH.items() for b in targets
            if layer_of(b) > layer_of(a)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _without_known(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {a: {b for b in targets if (a, b) not in KNOWN_VIOLATIONS}
            for a, targets in graph.items()}


def test_the_parser_sees_relative_lazy_and_submodule_imports():
    # cli.py imports cli_common at the top, and config via `from . import config`;
    # every layer check below depends on these being seen
    assert {"convbench.cli_common", "convbench.config"} <= GRAPH["convbench.cli"]
    assert "convbench.detection.config" in GRAPH["convbench.detection.cli"]
    assert len(MODULES) > 80 and all(GRAPH[m] is not None for m in MODULES)


def test_every_module_is_in_a_layer():
    for name in MODULES:
        layer_of(name)


def test_no_import_cycle():
    assert cycles(_without_known(GRAPH)) == []


def test_no_module_imports_a_layer_above_it():
    names = [n for n, _ in LAYERS]
    found = sorted(violations() - KNOWN_VIOLATIONS)
    assert found == [], "\n".join(f"{a} ({names[layer_of(a)]}) imports {b} "
                                  f"({names[layer_of(b)]})" for a, b in found)


@pytest.mark.parametrize("low", ["convbench.data", "convbench.models", "convbench.measure"])
def test_components_know_nothing_of_training(low):
    assert not {(a, b) for a, targets in GRAPH.items() if a.startswith(low)
                for b in targets if b.startswith("convbench.training")} - KNOWN_VIOLATIONS


def test_cli_command_groups_do_not_import_the_main_cli():
    for sub in ("convbench.cli_transfer", "convbench.detection.cli"):
        assert "convbench.cli" not in GRAPH[sub]


def test_no_private_names_imported_across_modules():
    """``from x import _name`` between modules reaches into another module's insides."""
    found = set()
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, node)
                found |= {(name, f"{target}.{a.name}") for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")}
    assert sorted(found - KNOWN_VIOLATIONS) == []

