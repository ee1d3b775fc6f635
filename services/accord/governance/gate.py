"""The policy gate an IG officer or CI runs before a change goes live (`accord policy test`):
opa fmt, opa check --strict, the Rego tests with a coverage threshold, the agreements
(shape and meaning, as `accord policy validate` checks them) and the authority rules'
schema.

The Rego tests test the rules with fixture agreements only, so they pass whatever the
shipped agreements say; the shipped agreements are checked by the agreements step."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from accord.governance.agreements import validate_authority, validate_dir
from accord.governance.meaning import Context
from accord.governance.stamp import stamp_problem

COVERAGE_THRESHOLD = 90.0


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd)


def _opa_tests(opa: Path, target: str, cwd: Path, threshold: float) -> Step:
    """Run the Rego tests once; measure coverage (a second run) only when they all passed,
    so coverage is reported once, and only for tests that ran."""
    name = "opa test"
    result = _run([str(opa), "test", target, "--format", "json"], cwd)
    try:
        results = json.loads(result.stdout)
    except ValueError:
        results = None
    if not isinstance(results, list):
        error = (result.stderr or result.stdout).strip() or f"exit {result.returncode}"
        return Step(name, False, "the tests did not run:\n" + error)
    if not results:
        return Step(name, False, "no Rego tests found (*_test.rego)")
    failed = [
        f"{r.get('package', '')}.{r.get('name', '')}: "
        + ("ERROR " + str(r["error"].get("message", "")) if r.get("error") else "FAIL")
        for r in results
        if r.get("fail") or r.get("error")
    ]
    if failed:
        detail = f"{len(failed)} of {len(results)} tests failed (coverage not measured)"
        return Step(name, False, detail + "".join(f"\n{line}" for line in failed))
    covered = _run([str(opa), "test", target, "--coverage", "--format", "json"], cwd)
    try:
        coverage = float(json.loads(covered.stdout)["coverage"])
    except (ValueError, KeyError, TypeError):
        return Step(name, False, f"{len(results)} tests passed; coverage could not be read")
    detail = f"{len(results)} tests passed, coverage {coverage:.1f}% (threshold {threshold:.0f}%)"
    return Step(name, coverage >= threshold, detail)


def run_gate(
    opa: Path,
    policies_dir: Path,
    echo: Callable[[str], None],
    threshold: float = COVERAGE_THRESHOLD,
    ctx: Context | None = None,
) -> list[Step]:
    """Every step, in order; each reports even when an earlier one failed. With `ctx`
    the agreements' meaning is checked too (what `accord policy validate` checks)."""
    steps = []
    target = str(policies_dir)
    cwd = policies_dir.parent

    result = _run([str(opa), "fmt", "--list", "--fail", target], cwd)
    steps.append(Step("opa fmt", result.returncode == 0, (result.stdout + result.stderr).strip()))

    result = _run([str(opa), "check", "--strict", target], cwd)
    steps.append(Step("opa check --strict", result.returncode == 0, result.stderr.strip()))

    steps.append(_opa_tests(opa, target, cwd, threshold))

    count, problems = validate_dir(policies_dir, ctx)
    errors = [p for p in problems if p.is_error]
    warnings = len(problems) - len(errors)
    detail = (
        f"{count} agreements, {len(errors)} error{'' if len(errors) == 1 else 's'}, "
        f"{warnings} warning{'' if warnings == 1 else 's'}"
    )
    if ctx is not None:
        detail += "; " + "; ".join(ctx.notes)
    detail += "".join(f"\n{p}" for p in problems)
    steps.append(Step("agreements", not errors, detail))

    problem = stamp_problem(policies_dir)
    steps.append(Step("rules' stamp", problem is None, problem or "current"))

    problems = validate_authority(policies_dir)
    detail = "who may publish what" + "".join(f"\n{p}" for p in problems)
    steps.append(Step("authority rules", not problems, detail))

    for step in steps:
        echo(f"{'ok  ' if step.ok else 'FAIL'} {step.name}: {step.detail}".rstrip(": "))
    return steps
