"""Tests that keep the shape honest (DESIGN.md: layout and dependency direction)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("scheduler", "probes", "consumers")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("package", SERVICES)
def test_service_packages_do_not_import_each_other(package: str) -> None:
    others = {p for p in SERVICES if p != package} | {"grenswacht"}
    for path in package_files(package):
        bad = {n for n in imports_of(path) if top(n) in others}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_schemas_import_nothing_of_ours() -> None:
    for path in package_files("schemas"):
        bad = {n for n in imports_of(path) if top(n) in (*SERVICES, "grenswacht")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_only_storage_imports_clickhouse_connect_and_only_the_kafka_bus_imports_kafka() -> None:
    for package in (*SERVICES, "schemas", "grenswacht"):
        for path in package_files(package):
            rel = path.relative_to(ROOT).as_posix()
            names = {top(n) for n in imports_of(path)}
            if "clickhouse_connect" in names or "chdb" in names:
                assert rel == "consumers/storage.py", rel
            if "kafka" in names:
                assert rel == "schemas/bus/kafka.py", rel


def test_only_scheduler_app_imports_apscheduler() -> None:
    for package in (*SERVICES, "schemas", "grenswacht"):
        for path in package_files(package):
            if "apscheduler" in {top(n) for n in imports_of(path)}:
                assert path.relative_to(ROOT).as_posix() == "scheduler/app.py"


def test_library_code_does_not_print() -> None:
    for package in (*SERVICES, "schemas"):
        for path in package_files(package):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Name) and n.func.id == "print"]
            assert not calls, f"{path.relative_to(ROOT)} prints"


OUR_PACKAGES = (*SERVICES, "schemas", "grenswacht")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, wherever the import statement is (module
    level or deferred inside a function); ``from a import b`` counts ``a.b`` when that is a
    module of ours, else ``a``."""
    modules = {module_name(p): p for package in OUR_PACKAGES for p in package_files(package)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    if child in modules:
                        targets.add(child)
                    elif node.module in modules:
                        targets.add(node.module)
        graph[name] = targets - {name}
    return graph


def test_no_import_cycles() -> None:
    """DESIGN.md: no circles among our modules, deferred imports included (a deferred
    import hides a circle, it does not remove it)."""
    graph = import_graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name):], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(graph.get(name, ())):
            visit(target, [*path, name])
        done.add(name)

    for module in sorted(graph):
        visit(module, [])
