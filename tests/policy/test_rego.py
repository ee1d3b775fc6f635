"""The Rego gate: opa fmt, opa check --strict and opa test with coverage, with the stack's OPA."""

import json
import subprocess
from pathlib import Path

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


def test_agreements_match_the_agreement_schema():
    from accord.governance.agreements import validate_dir

    count, problems = validate_dir(get_settings().policies_dir)
    assert count == 15
    assert [str(p) for p in problems] == []


def test_the_authority_rules_match_their_schema_and_a_broken_copy_is_named(tmp_path):
    import shutil

    from accord.governance.agreements import validate_authority

    assert validate_authority(get_settings().policies_dir) == []
    copy = tmp_path / "policies"
    shutil.copytree(get_settings().policies_dir, copy)
    rules = copy / "authority" / "authority.yaml"
    rules.write_text(
        rules.read_text().replace("recipient_kinds: [council]", "recipient_kinds: [charity]", 1)
    )
    problems = [str(p) for p in validate_authority(copy)]
    assert len(problems) == 1 and "authority.yaml:" in problems[0]
    assert "publishers.support-request.recipient_kinds[0]" in problems[0]


def test_accord_policy_test_runs_the_whole_gate(opa):
    from click.testing import CliRunner

    from accord.cli import main

    result = CliRunner().invoke(main, ["policy", "test"])
    assert result.exit_code == 0, result.output
    steps = ("opa fmt", "opa check --strict", "opa test --coverage", "agreement schema")
    for step in (*steps, "authority schema"):
        assert f"ok   {step}" in result.output
    print(result.output)


def test_accord_policy_test_fails_on_a_broken_copy(opa, tmp_path):
    import shutil

    from accord.governance.gate import run_gate

    copy = tmp_path / "policies"
    shutil.copytree(get_settings().policies_dir, copy)
    agreement = copy / "agreements" / "DSA-007.yaml"
    agreement.write_text(agreement.read_text().replace("status: active", "status: paused"))
    rego = copy / "accord" / "sharing" / "sharing.rego"
    rego.write_text(
        rego.read_text().replace("import data.accord.ethics\n", "import data.accord.ethics\n\n\n")
    )
    lines: list[str] = []
    steps = {step.name: step for step in run_gate(Path(opa), copy, lines.append)}
    assert not steps["opa fmt"].ok
    assert not steps["agreement schema"].ok
    assert "DSA-007.yaml" in steps["agreement schema"].detail
    assert "status" in steps["agreement schema"].detail


@pytest.mark.parametrize("step", [("fmt", "--list", "--fail"), ("check", "--strict")])
def test_the_opa_api_authorisation_policy_is_clean(opa, step):
    result = run(opa, *step, "deploy/opa")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_opa_api_authorisation_policy_tests_pass_with_full_coverage(opa):
    result = run(opa, "test", "deploy/opa", "--coverage", "--format", "json")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert json.loads(result.stdout)["coverage"] == 100


def test_policies_use_no_builtin_the_hubs_opa_withholds(opa):
    from accord.stack.opa import check_capabilities

    check_capabilities(get_settings(), get_settings().policies_dir)  # raises on refusal
