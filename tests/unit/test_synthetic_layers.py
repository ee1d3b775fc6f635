"""The synthetic data is a lower layer: it imports core, ingest and matching's pure parts."""

from __future__ import annotations

import ast
from pathlib import Path

import accord.synthetic

ALLOWED = (
    "accord.core",
    "accord.ingest",
    "accord.synthetic",
    "accord.matching.nicknames",
    "accord.matching.normalise",
)


def test_the_synthetic_package_imports_no_higher_layer() -> None:
    folder = Path(accord.synthetic.__file__).parent
    found: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("accord"):
                    found.setdefault(path.name, set()).add(name)
    assert found  # the walk saw the package's imports
    wrong = {
        module: sorted(n for n in names if not n.startswith(ALLOWED) and n not in ("accord",))
        for module, names in found.items()
    }
    assert {module: names for module, names in wrong.items() if names} == {}
