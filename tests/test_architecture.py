"""The package's shape (issue 22): one direction of flow, no import circle, short modules.

The import graph is read from the source with ``ast`` (nothing is imported), counting imports
inside functions too: a circle closed through a deferred import is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lvisnb"

# The steps of the flow, lowest first (shared/design.md): a module may import from its own step
# or a lower one, never from a higher one.
LAYERS = (
    ("files", "resources", "_lazy"),
    ("annotations",),
    ("evaluation",),
    ("data",),
    ("model",),
    ("engine",),
    ("methods",),
    ("viz",),
    ("notebook_runner",),
    ("cli", "__main__", "__init__"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
MAX_LEVELS = 8  # modules on the longest import chain
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
# compiled modules (lvisnb/evaluation/_results_json.c): leaves of the graph
EXTENSIONS = {_module_name(p.with_suffix(".py")) for p in PACKAGE.rglob("*.c")}


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The kit modules ``node`` imports (``from pkg import mod`` names the module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "lvisnb"]
    if node.level:
        base = module.split(".")
        is_package = MODULES[module].name == "__init__.py"
        base = base[: len(base) - node.level + is_package]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if prefix.split(".")[0] != "lvisnb":
        return []
    names = [f"{prefix}.{a.name}" for a in node.names]
    if any(name in EXTENSIONS for name in names):
        return []
    found = [name for name in names if name in MODULES]
    return found or [prefix]


def _imports(module: str) -> list[tuple[str, ast.stmt, bool]]:
    """(imported kit module, statement, at module top level) for each import in ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _resolve(module, node):
                while target not in MODULES and "." in target:
                    target = target.rsplit(".", 1)[0]
                found.append((target, node, id(node) in top))
    return found


GRAPH = {m: {t for t, _, _ in _imports(m) if t != m and t != "lvisnb"} for m in MODULES}


def _step(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_belongs_to_a_step():
    assert {_step(m) for m in MODULES} <= set(RANK), set(map(_step, MODULES)) - set(RANK)


def test_no_import_from_a_higher_step():
    upward = [
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        for t in targets
        if RANK[_step(t)] > RANK[_step(m)]
    ]
    assert not upward, upward


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle():
    assert _cycle() is None, " -> ".join(_cycle() or [])


def _levels() -> dict[str, int]:
    levels: dict[str, int] = {}

    def level(node: str) -> int:
        if node not in levels:
            levels[node] = 1 + max((level(t) for t in GRAPH[node]), default=0)
        return levels[node]

    for node in GRAPH:
        level(node)
    return levels


def test_import_chains_are_short():
    assert _cycle() is None
    deepest = max(_levels().items(), key=lambda item: item[1])
    assert deepest[1] <= MAX_LEVELS, deepest


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_short(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[module]}: {lines} lines"


def test_deferred_imports_say_why():
    """An import inside a function defers a heavy or optional dependency on purpose: a comment
    on its line (or the line above) says which."""
    silent = []
    for path in MODULES.values():
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                    continue
                here = lines[node.lineno - 1 : node.end_lineno]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                if not any("#" in line for line in here) and not above.startswith("#"):
                    silent.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not silent, silent


def test_graph_reader_sees_known_edges():
    """The test reads real edges: relative, absolute, and function-level imports all count."""
    assert "lvisnb.annotations.masks" in GRAPH["lvisnb.evaluation.results"]
    assert "lvisnb.engine.trainer" in GRAPH["lvisnb.cli"]
