"""`accord schemas check` against the real registry: conventions, then registered history."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.core.settings import Settings
from accord.stack import processes

from .conftest import admin_http

pytestmark = pytest.mark.integration


def run_check(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", "schemas", "check", *args],
        env=processes.worker_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def registered(stack: Settings) -> Iterator[str]:
    """The repository's ShieldingListEntry registered under a fresh partner subject."""
    url = stack.schema_registry_url
    subject = f"t{uuid.uuid4().hex[:10]}.partner.nhs-lothian.shielding-list.v1-value"
    text = (stack.schemas_dir / "ShieldingListEntry.avsc").read_text()
    admin_http().post(f"{url}/subjects/{subject}/versions", json={"schema": text}, timeout=30)
    yield subject
    admin_http().delete(f"{url}/subjects/{subject}", timeout=10)
    admin_http().delete(f"{url}/subjects/{subject}?permanent=true", timeout=10)


@pytest.fixture
def schemas_copy(stack: Settings, tmp_path: Path) -> Path:
    folder = tmp_path / "avro"
    shutil.copytree(stack.schemas_dir, folder)
    return folder


def edit(path: Path, change) -> None:
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def test_the_repositorys_schemas_pass_against_their_registered_history(stack, registered):
    result = run_check(stack)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    (line,) = [line for line in lines if "ShieldingListEntry.avsc" in line]
    assert line.startswith("ok") and "compatible with" in line
    per_schema = [line for line in lines if line.startswith(("ok ", "FAIL"))]
    assert len(per_schema) == len(list(stack.schemas_dir.glob("*.avsc")))
    assert "checked against registered history" in lines[-1]


def test_an_incompatible_change_fails_naming_file_field_and_subject(
    stack, registered, schemas_copy
):
    def postcode_to_int(s):
        next(f for f in s["fields"] if f["name"] == "postcode")["type"] = "int"

    edit(schemas_copy / "ShieldingListEntry.avsc", postcode_to_int)
    result = run_check(stack, "--dir", str(schemas_copy))
    assert result.returncode == 1, result.stdout
    out = result.stdout
    assert "FAIL ShieldingListEntry.avsc" in out
    problem = next(line for line in out.splitlines() if registered in line)
    assert "ShieldingListEntry.avsc: subject " in problem
    assert "TYPE_MISMATCH" in problem and "postcode" in problem
    # The other schemas are still reported, one line each, and pass.
    assert "ok   SupportCase.avsc" in out


def test_an_optional_field_is_a_compatible_change(stack, registered, schemas_copy):
    def add_optional(s):
        s["fields"].append(
            {"name": "nhs_number", "type": ["null", "string"], "default": None, "doc": "If known."}
        )

    edit(schemas_copy / "ShieldingListEntry.avsc", add_optional)
    result = run_check(stack, "--dir", str(schemas_copy))
    assert result.returncode == 0, result.stdout


def test_convention_violations_name_file_and_field(stack, schemas_copy):
    def break_conventions(s):
        field = next(f for f in s["fields"] if f["name"] == "town")
        del field["doc"]
        field["type"], field["default"] = ["string", "null"], "Edinburgh"
        s["fields"].append({"name": "seenAt", "type": "long", "logicalType": "date", "doc": "d"})

    edit(schemas_copy / "ShieldingListEntry.avsc", break_conventions)
    result = run_check(stack, "--dir", str(schemas_copy), "--offline")
    assert result.returncode == 1
    out = result.stdout
    assert "ShieldingListEntry.avsc: field 'town': needs a doc" in out
    assert "ShieldingListEntry.avsc: field 'town': nullable fields are" in out
    assert "ShieldingListEntry.avsc: field 'seenAt': name is not snake_case" in out
    assert "ShieldingListEntry.avsc: field 'seenAt': logicalType 'date' is on the field" in out


def test_without_a_registry_only_conventions_are_checked_and_that_is_said(stack):
    result = run_check(stack, "-s", "http://127.0.0.1:9")
    assert result.returncode == 0, result.stdout
    assert "unreachable" in result.stdout and "checked conventions only" in result.stdout
