"""The Rego gate: opa fmt, opa check --strict and opa test with coverage, with the stack's OPA."""

import json
import subprocess

import pytest

from accord.core.settings import get_settings

COVERAGE_THRESHOLD = 90.0


@pytest.fixture(scope="module")
def opa():
    binary = get_settings().opa_binary
    if not binary.exists():
        pytest.fail(f"OPA is not built at {binary}; run `accord stack up` first")
    return str(binary)


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, cwd=get_settings().home)


def test_policies_are_opa_fmt_clean(opa):
    result = run(opa, "fmt", "--list", "--fail", "policies")
    assert result.returncode == 0, f"not formatted: {result.stdout}{result.stderr}"


def test_policies_pass_opa_check_strict(opa):
    result = run(opa, "check", "--strict", "policies")
    assert result.returncode == 0, result.stdout + result.stderr


def test_opa_tests_pass_with_coverage(opa):
    result = run(opa, "test", "policies", "--coverage", "--format", "json")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    coverage = json.loads(result.stdout)["coverage"]
    print(f"rego coverage: {coverage:.1f}%")
    assert coverage >= COVERAGE_THRESHOLD
