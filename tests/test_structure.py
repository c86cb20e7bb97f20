"""The shape of the code: imports that point one way, small modules, a short top level."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The build maps these folders into the edgekit namespace (pyproject's package-dir).
PACKAGE_DIRS = {
    "edgekit": ROOT / "edgekit",
    "edgekit.converters": ROOT / "converters",
    "edgekit.runtimes": ROOT / "runtimes",
}
MAX_LINES = 400
MAX_TOP_LEVEL_MODULES = 12


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """edgekit modules ``name`` imports, anywhere in it (a lazy import inside a function counts)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from a.b import c` imports the module a.b.c where there is one, else names of a.b.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _package_of(module: str) -> str:
    """A module's unit in the package graph: the folder it lives in, or the module itself at the
    top of edgekit (errors, data, inputs …: the core every subsystem shares)."""
    path = MODULES[module]
    folder = path.parent
    for package, root in PACKAGE_DIRS.items():
        if folder == root and package == "edgekit":
            return module if path.name != "__init__.py" else "edgekit"
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _describe(cycle: list[str], graph: dict[str, set[str]]) -> str:
    members = set(cycle)
    edges = [f"{a} → {b}" for a in cycle for b in sorted(graph[a] & members)]
    return "; ".join(edges)


def test_no_module_imports_itself_back() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles: " + " | ".join(_describe(c, GRAPH) for c in cycles)


def test_no_package_imports_itself_back() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        mine = _package_of(module)
        packages.setdefault(mine, set()).update(_package_of(t) for t in targets if _package_of(t) != mine)
    cycles = _cycles(packages)
    assert not cycles, "package cycles: " + " | ".join(_describe(c, packages) for c in cycles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_is_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def test_the_top_level_is_short() -> None:
    top = sorted(p.name for p in (ROOT / "edgekit").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"edgekit/ holds {len(top)} modules: {', '.join(top)}"


def test_only_the_cli_imports_calibration() -> None:
    importers = sorted(
        name
        for name, targets in GRAPH.items()
        if any(t.startswith("edgekit.predict.calibrate") for t in targets)
        and not name.startswith(("edgekit.cli", "edgekit.predict.calibrate"))
    )
    assert not importers, f"calibration imported by {', '.join(importers)}"
