"""The package's shape: no import cycle among the modules that run actions
and jobs, and each backend in one folder."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import aptools

ROOT = Path(aptools.__file__).parent
# The modules whose imports must form no cycle (every import counts: at
# module level, under TYPE_CHECKING, or inside a function).
CHECKED = (
    "aptools.actions",
    "aptools.execution",
    "aptools.jobs",
    "aptools.protocol",
    "aptools.store",
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [source, *(f"{source}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _checked(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in CHECKED)


def test_no_import_cycle_among_actions_jobs_protocol_and_stores() -> None:
    known = _modules()
    graph = {name: _imports(name, path, known) for name, path in known.items()}
    assert graph["aptools.jobs.runner"], "the import graph was read"
    tangled = [c for c in _cycles(graph) if any(_checked(m) for m in c)]
    assert tangled == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


# Modules that once imported each other in a circle: each must import first,
# in a fresh interpreter (an import cycle shows as a partly initialised module).
ALONE = (
    "aptools.actions",
    "aptools.execution",
    "aptools.jobs.engine",
    "aptools.jobs.handle",
    "aptools.jobs.runner",
    "aptools.jobs.settings",
    "aptools.jobs.tokens",
    "aptools.protocol.access",
    "aptools.protocol.lifecycle",
    "aptools.protocol.spec",
    "aptools.store.jobqueue",
    "aptools.store.sqlite.jobs",
)


@pytest.mark.parametrize("name", ALONE)
def test_each_module_imports_first_on_its_own(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {name}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_jobs_hold_no_backend_code() -> None:
    # Each backend is one folder under aptools/store holding its actions and
    # its jobs; aptools/jobs holds no SQL.
    for backend in ("memory", "sqlite", "postgresql"):
        folder = ROOT / "store" / backend
        assert (folder / "store.py").is_file() and (folder / "jobs.py").is_file()
    for path in (ROOT / "jobs").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "UPDATE aptools_jobs" not in text and "sqlite3" not in text, path
