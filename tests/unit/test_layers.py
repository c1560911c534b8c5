"""The import graph keeps the layout's promises: no circle, and imports point down only.

Read from the source (every import statement, those inside functions included), so a
lazy import cannot hide a circle. A package's `__init__` may gather its own modules;
every other edge counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("exporter", "stats_service")
# The lowest floor: what a feature is, and how rows become features. The baseline builder
# and the sidecar run exactly this code, so it stays free of services and stores.
FEATURE_FLOOR = ("exporter.names", "exporter.schema", "exporter.features")
# What the stats service may use of the sidecar's package: definitions and store readers.
STATS_MAY_IMPORT = (
    "exporter.names",
    "exporter.errors",
    "exporter.config",
    "exporter.schema",
    "exporter.features",
    "exporter.records",
    "exporter.store",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[module_name(path)] = path
    return found


def imports(path: Path, known: set[str]) -> Iterator[str]:
    """The project modules `path` imports (`from a import b` names module a.b if it is one)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name in known:
                yield name


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges: dict[str, set[str]] = {}
    for name, path in found.items():
        targets = set(imports(path, known)) - {name}
        if path.name == "__init__.py":  # a package gathering its own modules
            targets = {t for t in targets if not t.startswith(name + ".")}
        edges[name] = targets
    return edges


def test_no_import_circle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_the_feature_floor_imports_only_itself() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith(FEATURE_FLOOR):
            outside = {t for t in targets if not t.startswith(FEATURE_FLOOR)}
            assert outside == set(), f"{name} imports {sorted(outside)}"


@pytest.mark.parametrize("module", sorted(m for m in modules() if m.startswith("exporter")))
def test_the_sidecar_never_imports_the_stats_service(module: str) -> None:
    assert not {t for t in graph()[module] if t.startswith("stats_service")}


def test_the_stats_service_uses_only_definitions_and_store_readers_of_the_sidecar() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("stats_service"):
            sidecar = {t for t in targets if t.startswith("exporter")}
            allowed = {t for t in sidecar if t.startswith(STATS_MAY_IMPORT)}
            assert sidecar == allowed, f"{name} imports {sorted(sidecar - allowed)}"


def test_stores_and_records_know_nothing_of_serving_or_analysis() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith(("exporter.store", "exporter.records")):
            above = {t for t in targets if t.startswith(("exporter.serving", "exporter.analysis"))}
            assert above == set(), f"{name} imports {sorted(above)}"


def test_the_analysis_never_reaches_back_into_the_serving_path() -> None:
    # The serving process starts the analysis and hands it frames; nothing flows back
    # up as an import (the analysis talks back only through its feedback pipe).
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("exporter.analysis"):
            serving = {t for t in targets if t.startswith("exporter.serving")}
            assert serving == set(), f"{name} imports {sorted(serving)}"
