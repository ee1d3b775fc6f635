"""Agreement validation: the shipped agreements are valid; each kind of mistake is
reported with its file, path, line and problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from accord.core.settings import get_settings
from accord.governance.agreements import EMERGENCY_MAX_DAYS, validate_dir

POLICIES = get_settings().policies_dir


def test_shipped_agreements_are_valid():
    count, problems = validate_dir(POLICIES)
    assert count == 15
    assert problems == []


@pytest.fixture
def policies_copy(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES / "schemas", tmp_path / "schemas")
    (tmp_path / "agreements").mkdir()
    shutil.copy(POLICIES / "agreements" / "DSA-007.yaml", tmp_path / "agreements")
    return tmp_path


def rewrite(policies: Path, change) -> Path:
    path = policies / "agreements" / "DSA-007.yaml"
    document = yaml.safe_load(path.read_text())
    change(document["DSA-007"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def set_key(key, value):
    return lambda a: a.__setitem__(key, value)


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (set_key("status", "paused"), "status", "is not one of"),
        (lambda a: a.pop("lawful_basis"), "", "'lawful_basis' is a required property"),
        (
            lambda a: a["lawful_basis"].__setitem__("article_9", "health"),
            "lawful_basis.article_9",
            "does not match",
        ),
        (
            lambda a: a["recipients"][2].__setitem__("kind", "broker"),
            "recipients[2].kind",
            "is not one of",
        ),
        (
            lambda a: a["datasets"]["shielding-list"]["fields"].append("Post Code"),
            "datasets.shielding-list.fields[9]",
            "does not match",
        ),
        (set_key("valid_until", "2025-01-01T00:00:00Z"), "valid_until", "after valid_from"),
        (set_key("type", "emergency"), "valid_until", f"at most {EMERGENCY_MAX_DAYS} days"),
        (
            lambda a: a["clauses"].pop("4.2"),
            "clauses",
            "no clause with topic 'minimisation'",
        ),
        (
            lambda a: a["datasets"]["shielding-list"].__setitem__(
                "recipient_fields", {"nowhere": ["given_name"]}
            ),
            "datasets.shielding-list.recipient_fields.nowhere",
            "is not one of the recipients",
        ),
        (set_key("id", "DSA-008"), "id", "must equal the top-level key"),
        (set_key("extra", 1), "", "Additional properties are not allowed"),
    ],
)
def test_each_mistake_is_named_with_file_path_and_line(policies_copy, change, path, message):
    file = rewrite(policies_copy, change)
    _, problems = validate_dir(policies_copy)
    matching = [p for p in problems if p.path == path and message in p.message]
    assert matching, [str(p) for p in problems]
    problem = matching[0]
    assert problem.file == str(file)
    assert problem.line is not None and problem.line >= 1
    assert str(problem).startswith(f"{file}:{problem.line}: ")


def test_unreadable_yaml_and_wrong_key_are_reported(policies_copy):
    (policies_copy / "agreements" / "DSA-099.yaml").write_text("DSA-099: [unclosed\n")
    (policies_copy / "agreements" / "DSA-098.yaml").write_text("a: 1\nb: 2\n")
    _, problems = validate_dir(policies_copy)
    messages = {Path(p.file).name: p.message for p in problems}
    assert "cannot be read as YAML" in messages["DSA-099.yaml"]
    assert "exactly one agreement" in messages["DSA-098.yaml"]
