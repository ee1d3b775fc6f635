"""Lower layers never import higher ones: the faust-free pipeline core sits below both
the worker and governance, which do not import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "accord"

# package -> packages it must never import (directly, at any depth of its modules).
FORBIDDEN = {
    "core": {
        "pipeline",
        "worker",
        "governance",
        "access",
        "ingest",
        "matching",
        "bench",
        "demo",
        "console",
    },
    "pipeline": {"worker", "governance", "access", "bench", "demo", "campaign", "stack"},
    "worker": {"governance", "bench", "demo", "campaign", "coordinator", "gateway"},
    "governance": {"worker", "bench", "demo", "campaign"},
    "matching": {"pipeline", "worker", "governance"},
    # ingest.publish (the partner CLI) asks governance who may assert what.
    "ingest": {"pipeline", "worker"},
    # The console is a service on top: what it uses never imports it, and it runs no worker.
    "stack": {"console"},
    "coordinator": {"console", "worker"},
    "console": {"worker", "bench", "demo", "campaign"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "accord" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_no_higher_layer(package):
    wrong = {
        f"{path.relative_to(PACKAGE)} imports accord.{name}"
        for path in (PACKAGE / package).rglob("*.py")
        for name in imported_packages(path) & FORBIDDEN[package]
    }
    assert not wrong, sorted(wrong)


def test_the_pipeline_core_needs_no_stream_processor():
    for path in (PACKAGE / "pipeline").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {
            alias.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for alias in n.names
        } | {
            n.module.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module
        }
        assert not modules & {"faust", "aiokafka", "confluent_kafka"}, path.name
