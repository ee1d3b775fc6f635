"""The policy gate an IG officer or CI runs before a change goes live (`accord policy test`):
opa fmt, opa check --strict, opa test with a coverage threshold, the agreement schema and
the authority rules' schema."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from accord.governance.agreements import validate_authority, validate_dir

COVERAGE_THRESHOLD = 90.0


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd)


def run_gate(
    opa: Path,
    policies_dir: Path,
    echo: Callable[[str], None],
    threshold: float = COVERAGE_THRESHOLD,
) -> list[Step]:
    """Every step, in order; each reports even when an earlier one failed."""
    steps = []
    target = str(policies_dir)
    cwd = policies_dir.parent

    result = _run([str(opa), "fmt", "--list", "--fail", target], cwd)
    steps.append(Step("opa fmt", result.returncode == 0, (result.stdout + result.stderr).strip()))

    result = _run([str(opa), "check", "--strict", target], cwd)
    steps.append(Step("opa check --strict", result.returncode == 0, result.stderr.strip()))

    result = _run([str(opa), "test", target, "--coverage", "--format", "json"], cwd)
    try:
        report = json.loads(result.stdout)
        coverage = float(report.get("coverage", 0.0))
    except ValueError:
        coverage = 0.0
    failed = _run([str(opa), "test", target], cwd) if result.returncode != 0 else None
    detail = f"coverage {coverage:.1f}% (threshold {threshold:.0f}%)"
    if failed is not None:
        detail += "\n" + "\n".join(
            line for line in failed.stdout.splitlines() if "FAIL" in line or "ERROR" in line
        )
        detail += failed.stderr
    steps.append(
        Step("opa test --coverage", result.returncode == 0 and coverage >= threshold, detail)
    )

    count, problems = validate_dir(policies_dir)
    detail = f"{count} agreements" + "".join(f"\n{p}" for p in problems)
    steps.append(Step("agreement schema", not problems, detail))

    problems = validate_authority(policies_dir)
    detail = "who may publish what" + "".join(f"\n{p}" for p in problems)
    steps.append(Step("authority schema", not problems, detail))

    for step in steps:
        echo(f"{'ok  ' if step.ok else 'FAIL'} {step.name}: {step.detail}".rstrip(": "))
    return steps
