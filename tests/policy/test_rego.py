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
    assert count >= 1
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
    steps = ("opa fmt", "opa check --strict", "opa test", "agreements")
    for step in (*steps, "authority rules"):
        assert f"ok   {step}" in result.output
    assert result.output.count("coverage") == 1
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
    assert not steps["agreements"].ok
    assert "DSA-007.yaml" in steps["agreements"].detail
    assert "status" in steps["agreements"].detail


def copy_of_policies(tmp_path) -> Path:
    import shutil

    copy = tmp_path / "policies"
    shutil.copytree(get_settings().policies_dir, copy)
    return copy


def test_the_rego_tests_pass_whatever_the_agreements_say(opa, tmp_path):
    """The Rego tests use fixture agreements only: with DSA-015 suspended, a field removed
    from DSA-010 (its version raised), or no agreements at all, they all still pass."""
    from accord.governance.agreements import context_for
    from accord.governance.gate import run_gate
    from accord.governance.meaning import Baseline

    copy = copy_of_policies(tmp_path)
    food = copy / "agreements" / "DSA-015.yaml"
    food.write_text(food.read_text().replace("status: active", "status: suspended", 1))
    lothian = copy / "agreements" / "DSA-010.yaml"
    text = lothian.read_text()
    assert "postcode, " in text and "version: 2" in text
    lothian.write_text(text.replace("postcode, ", "", 1).replace("version: 2", "version: 3", 1))
    settings = get_settings()
    ctx = context_for(copy, settings, "none")
    ctx.baseline = Baseline("the shipped agreements", _shipped())
    lines: list[str] = []
    steps = run_gate(Path(opa), copy, lines.append, ctx=ctx)
    assert all(step.ok for step in steps), "\n".join(lines)

    for path in (copy / "agreements").glob("*.yaml"):
        path.unlink()
    steps = {s.name: s for s in run_gate(Path(opa), copy, lines.append)}
    assert steps["opa test"].ok, steps["opa test"].detail


def test_a_field_removed_without_a_new_version_fails_only_the_agreements_step(opa, tmp_path):
    from accord.governance.agreements import context_for
    from accord.governance.gate import run_gate
    from accord.governance.meaning import Baseline

    copy = copy_of_policies(tmp_path)
    lothian = copy / "agreements" / "DSA-010.yaml"
    lothian.write_text(lothian.read_text().replace("postcode, ", "", 1))
    ctx = context_for(copy, get_settings(), "none")
    ctx.baseline = Baseline("the shipped agreements", _shipped())
    lines: list[str] = []
    steps = {s.name: s for s in run_gate(Path(opa), copy, lines.append, ctx=ctx)}
    assert [name for name, step in steps.items() if not step.ok] == ["agreements"]
    assert "DSA-010.yaml:7: version: the terms changed since the shipped agreements" in (
        steps["agreements"].detail
    )
    assert "set version: 3" in steps["agreements"].detail


def _shipped() -> dict:
    from accord.pipeline.retention import agreements_from_dir

    return agreements_from_dir(get_settings().policies_dir)


def test_a_failing_rego_test_is_named_and_no_coverage_is_reported(opa, tmp_path):
    from accord.governance.gate import run_gate

    copy = copy_of_policies(tmp_path)
    tests = copy / "accord" / "sharing" / "sharing_test.rego"
    tests.write_text(tests.read_text().replace('d.clauses == ["4.1"]', 'd.clauses == ["9.9"]', 1))
    lines: list[str] = []
    steps = {s.name: s for s in run_gate(Path(opa), copy, lines.append)}
    detail = steps["opa test"].detail
    assert not steps["opa test"].ok
    assert detail.startswith("1 of ") and "tests failed (coverage not measured)" in detail
    assert "data.accord.sharing_test.test_food_partner_serves_only_its_areas: FAIL" in detail
    assert "%" not in detail

    broken = copy / "accord" / "broken.rego"
    broken.write_text("package accord.broken\n\np if { y }\n")
    steps = {s.name: s for s in run_gate(Path(opa), copy, lines.append)}
    assert steps["opa test"].detail.startswith("the tests did not run:")
    assert "rego_unsafe_var_error" in steps["opa test"].detail


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
