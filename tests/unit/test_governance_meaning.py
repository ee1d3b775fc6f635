"""`accord policy validate` checks what an agreement means: fields of the dataset's Avro
record, special-category fields only for health recipients, known organisations of the
right kind, review dates, and terms not changed without a higher version. Each finding
names the file, line and path; warnings do not fail; a wrong folder is one line, exit 2."""

from __future__ import annotations

import copy
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from accord.cli import main
from accord.core.settings import get_settings
from accord.governance.agreements import not_a_policies_folder, validate_dir
from accord.governance.meaning import (
    ERROR,
    WARNING,
    Baseline,
    Context,
    dataset_fields,
    git_baseline,
    known_organisations,
    meaning_problems,
    suggest,
)

SETTINGS = get_settings()
POLICIES = SETTINGS.policies_dir


def load(agreement_id: str) -> dict:
    path = POLICIES / "agreements" / f"{agreement_id}.yaml"
    return yaml.safe_load(path.read_text())[agreement_id]


def context(today=date(2026, 6, 1), baseline=None) -> Context:
    return Context(
        fields=dataset_fields(SETTINGS.schemas_dir),
        organisations=known_organisations(SETTINGS.home / "partners"),
        today=today,
        baseline=baseline,
    )


def findings(agreement_id: str, agreement: dict, ctx: Context | None = None):
    return [
        (".".join(str(s) for s in path), message, severity)
        for path, message, severity in meaning_problems(agreement_id, agreement, ctx or context())
    ]


def test_the_shipped_agreements_mean_what_they_should_before_their_review_dates():
    for path in sorted((POLICIES / "agreements").glob("*.yaml")):
        agreement = yaml.safe_load(path.read_text())[path.stem]
        assert findings(path.stem, agreement) == [], path.name


def test_a_misspelt_field_is_refused_with_a_suggestion():
    agreement = load("DSA-007")
    agreement["datasets"]["shielding-list"]["fields"].append("chi_numbr")
    [(path, message, severity)] = findings("DSA-007", agreement)
    assert path == "datasets.shielding-list.fields.9"
    assert message == (
        "'chi_numbr' is not a field of shielding-list (ShieldingListEntry.avsc); "
        "did you mean 'chi_number'?"
    )
    assert severity == ERROR


def test_a_misspelt_mask_field_and_an_unknown_dataset_are_refused():
    agreement = load("DSA-007")
    agreement["datasets"]["shielding-list"]["mask"] = {"post_code": "outward-code"}
    agreement["datasets"]["shielding-lists"] = {"fields": ["given_name"]}
    messages = [m for _, m, _ in findings("DSA-007", agreement)]
    assert any("'post_code' is not a field" in m and "'postcode'" in m for m in messages)
    assert any(
        "'shielding-lists' is not a dataset" in m and "'shielding-list'" in m for m in messages
    )


def test_a_clinical_field_in_a_councils_list_is_refused_and_allowed_for_a_health_recipient():
    agreement = load("DSA-007")
    agreement["datasets"]["shielding-list"]["fields"].append("clinical_risk_group")
    found = findings("DSA-007", agreement)
    # one finding per non-health recipient given the dataset's list (six councils)
    assert len(found) == 6
    assert all("special-category (health) data" in m for _, m, _ in found)
    assert "glasgow-city is a council recipient" in found[0][1]

    health = load("DSA-007")
    health["recipients"].append({"org": "nhs-fife", "kind": "health", "council_area": "Fife"})
    spec = health["datasets"]["shielding-list"]
    spec["recipient_fields"] = {"nhs-fife": [*spec["fields"], "clinical_risk_group"]}
    assert findings("DSA-007", health) == []


def test_a_third_sector_recipients_own_list_is_checked_too():
    agreement = load("DSA-015")
    agreement["datasets"]["shielding-list"]["recipient_fields"] = {
        "community-food-network": ["given_name", "clinical_risk_group"]
    }
    [(path, message, _)] = findings("DSA-015", agreement)
    assert path == "datasets.shielding-list.recipient_fields.community-food-network.1"
    assert "community-food-network is a third-sector recipient" in message


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            lambda a: a.__setitem__("providers", ["nhs-lothain"]),
            "providers.0",
            "'nhs-lothain' is not a known organisation; did you mean 'nhs-lothian'",
        ),
        (
            lambda a: a["recipients"][0].__setitem__("org", "city-of-edinburg"),
            "recipients.0.org",
            "'city-of-edinburg' is not a known organisation; did you mean 'city-of-edinburgh'?",
        ),
        (
            lambda a: a["recipients"][0].__setitem__("org", "food-for-all"),
            "recipients.0.org",
            "register a partner with partners/food-for-all.yaml",
        ),
        (
            lambda a: a["recipients"][0].__setitem__("kind", "health"),
            "recipients.0.kind",
            "city-of-edinburgh is a council, not of kind 'health'",
        ),
        (
            lambda a: a["recipients"][0].__setitem__("kind", "third-sector"),
            "recipients.0.kind",
            "city-of-edinburgh is a council, not a third-sector organisation",
        ),
        (
            lambda a: a["recipients"][0].__setitem__("council_area", "Edinburgh"),
            "recipients.0.council_area",
            "'Edinburgh' is not one of Scotland's council areas; did you mean 'City of Edinburgh'?",
        ),
    ],
)
def test_organisations_and_areas_are_known_and_of_their_kind(change, path, message):
    agreement = load("DSA-010")
    change(agreement)
    found = findings("DSA-010", agreement)
    assert any(p == path and message in m and s == ERROR for p, m, s in found), found


def test_a_registered_third_sector_partner_is_known():
    assert known_organisations(SETTINGS.home / "partners")["community-food-network"] == "registered"
    assert findings("DSA-015", load("DSA-015")) == []


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 10, 31), []),
        (date(2026, 11, 1), ["the review date 2026-12-01 is in 30 days"]),
        (date(2026, 11, 30), ["the review date 2026-12-01 is in 1 day"]),
        (date(2026, 12, 1), ["the review date 2026-12-01 is today"]),
        (date(2026, 12, 2), ["the review date 2026-12-01 has passed (1 day ago)"]),
    ],
)
def test_review_dates_passed_or_within_30_days_are_warnings(today, expected):
    found = findings("DSA-007", load("DSA-007"), context(today=today))
    assert [m.split(":")[0] for _, m, _ in found] == expected
    assert all(p == "review_date" and s == WARNING for p, _, s in found)


def test_an_expired_agreement_owes_no_review():
    agreement = load("DSA-007") | {"status": "expired"}
    assert findings("DSA-007", agreement, context(today=date(2027, 6, 1))) == []


def served(**agreements) -> Baseline:
    return Baseline("the version OPA serves", agreements)


def test_terms_changed_without_a_higher_version_are_an_error():
    before = load("DSA-015")
    after = copy.deepcopy(before)
    after["datasets"]["shielding-list"]["fields"].remove("contact_phone")
    [(path, message, severity)] = findings(
        "DSA-015", after, context(baseline=served(**{"DSA-015": before}))
    )
    assert (path, severity) == ("version", ERROR)
    assert message == (
        "the terms changed since the version OPA serves (datasets) but the version is still 1: "
        "set version: 2"
    )
    after["version"] = 2
    assert findings("DSA-015", after, context(baseline=served(**{"DSA-015": before}))) == []


def test_suspending_or_recording_a_review_needs_no_new_version():
    before = load("DSA-015")
    after = before | {
        "status": "suspended",
        "status_reason": "incident under investigation",
        "review_date": "2027-03-01",
    }
    assert findings("DSA-015", after, context(baseline=served(**{"DSA-015": before}))) == []


def test_a_lower_version_is_an_error_and_a_new_agreement_has_nothing_to_compare():
    before = load("DSA-007")
    lower = before | {"version": 1}
    [(path, message, _)] = findings(
        "DSA-007", lower, context(baseline=served(**{"DSA-007": before}))
    )
    assert (
        path == "version"
        and "version 1 is lower than the version OPA serves (version 2)" in message
    )
    assert findings("DSA-007", before, context(baseline=served())) == []


def git(folder: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org", *argv],
        check=True,
        capture_output=True,
    )


def test_the_git_baseline_is_the_last_committed_version(tmp_path):
    shutil.copytree(POLICIES, tmp_path / "policies")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "policies")
    git(tmp_path, "commit", "-q", "-m", "agreements")
    path = tmp_path / "policies" / "agreements" / "DSA-015.yaml"
    path.write_text(path.read_text().replace("contact_phone]", "]", 1))
    baseline = git_baseline(tmp_path / "policies")
    assert baseline is not None and baseline.agreements["DSA-015"] == load("DSA-015")
    _, problems = validate_dir(tmp_path / "policies", context(baseline=baseline))
    assert [(Path(p.file).name, p.path) for p in problems if p.is_error] == [
        ("DSA-015.yaml", "version")
    ]
    assert git_baseline(Path("/")) is None or not git_baseline(Path("/")).agreements


def test_suggestions():
    assert suggest("DSA-O10", ["DSA-010", "DSA-011"]) == "; did you mean 'DSA-010' or 'DSA-011'?"
    assert suggest("dsa-010", ["DSA-010"]) == "; did you mean 'DSA-010'?"
    assert suggest("zzz", ["DSA-010"]) == ""


def test_a_folder_without_agreements_or_rego_is_not_a_policies_folder(tmp_path):
    assert not_a_policies_folder(POLICIES) is None
    reason = not_a_policies_folder(tmp_path)
    assert reason.startswith(f"{tmp_path} is not a policies folder: it has no agreements/ folder")
    assert "no Rego rules" in reason
    assert not_a_policies_folder(tmp_path / "missing") == f"{tmp_path / 'missing'} does not exist"


@pytest.mark.parametrize("command", ["validate", "test", "simulate"])
def test_every_policy_command_refuses_a_wrong_folder_in_one_line(tmp_path, command):
    result = CliRunner().invoke(main, ["policy", command, str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert "is not a policies folder" in result.output
    assert "Traceback" not in result.output


def test_validate_prints_warnings_and_exits_0_and_errors_exit_1(tmp_path):
    copy_dir = tmp_path / "policies"
    shutil.copytree(POLICIES, copy_dir)
    result = CliRunner().invoke(main, ["policy", "validate", str(copy_dir), "--against", "none"])
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.output
    path = copy_dir / "agreements" / "DSA-015.yaml"
    path.write_text(
        path.read_text().replace("fields: [given_name,", "fields: [chi_numbr, given_name,")
    )
    result = CliRunner().invoke(main, ["policy", "validate", str(copy_dir), "--against", "none"])
    assert result.exit_code == 1
    assert "DSA-015.yaml:30: datasets.shielding-list.fields[0]: 'chi_numbr'" in result.output
    assert "1 error, " in result.output
    assert "versions not compared (--against none)" in result.output
