"""Agreements as data: each `policies/agreements/<id>.yaml` checked against the JSON Schema
OPA also enforces (`policies/schemas/agreement/schema.json`), plus the checks a schema
cannot express (dates in order, emergency time box, clauses the rules cite).

Every problem names the file, the path inside the agreement and the line, so an IG
officer can fix it without reading code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from accord.governance.meaning import ERROR, Context, meaning_problems

# Must match emergency_max_days in policies/accord/agreements/agreements.rego.
EMERGENCY_MAX_DAYS = 30
# Clause topics the rules cite; an agreement without them gets uncited reasons.
CITED_TOPICS = ("purpose", "residence", "minimisation", "clinical", "opt-out", "children")


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    line: int | None
    message: str
    severity: str = ERROR

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        tag = "" if self.is_error else "warning: "
        return f"{where}: {self.path or '(agreement)'}: {tag}{self.message}"


def not_a_policies_folder(policies_dir: Path) -> str | None:
    """Why `policies_dir` is not a policies folder (one line), or None when it is one:
    it needs agreements/, Rego rules and the agreement schema."""
    if not policies_dir.exists():
        return f"{policies_dir} does not exist"
    if not policies_dir.is_dir():
        return f"{policies_dir} is not a folder"
    missing = []
    if not (policies_dir / "agreements").is_dir():
        missing.append("no agreements/ folder")
    if not any(policies_dir.rglob("*.rego")):
        missing.append("no Rego rules (*.rego)")
    if not schema_path(policies_dir).is_file():
        missing.append("no schemas/agreement/schema.json")
    if not missing:
        return None
    return (
        f"{policies_dir} is not a policies folder: it has {', '.join(missing)} "
        "(give the folder that holds agreements/, accord/ and schemas/, e.g. a copy of policies/)"
    )


def schema_path(policies_dir: Path) -> Path:
    return policies_dir / "schemas" / "agreement" / "schema.json"


def load_schema(policies_dir: Path) -> dict[str, Any]:
    import json

    return json.loads(schema_path(policies_dir).read_text(encoding="utf-8"))


def _line_of(node: yaml.Node | None, path: list[Any]) -> int | None:
    """1-based line of `path` inside a composed YAML node (the nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for step in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(step)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            match = node.value[step] if step < len(node.value) else None
        else:
            match = None
        if match is None:
            break
        node, line = match, match.start_mark.line + 1
    return line


def _dotted(path: list[Any]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def semantic_problems(agreement: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """Checks a JSON Schema cannot express, as (path, message)."""
    found: list[tuple[list[Any], str]] = []
    start, end = _timestamp(agreement.get("valid_from")), _timestamp(agreement.get("valid_until"))
    if start and end and end <= start:
        found.append((["valid_until"], "must be after valid_from"))
    if agreement.get("type") == "emergency" and start and end:
        if end - start > timedelta(days=EMERGENCY_MAX_DAYS):
            found.append(
                (
                    ["valid_until"],
                    f"an emergency agreement lasts at most {EMERGENCY_MAX_DAYS} days from "
                    "valid_from; the policy treats it as expired after that",
                )
            )
    clauses = agreement.get("clauses") or {}
    topics = {c.get("topic") for c in clauses.values() if isinstance(c, dict)}
    for topic in CITED_TOPICS:
        if topic not in topics:
            found.append((["clauses"], f"no clause with topic {topic!r}, which rules cite"))
    if agreement.get("type") == "emergency" and "emergency" not in topics:
        found.append((["clauses"], "an emergency agreement needs a clause with topic 'emergency'"))
    recipients = {r.get("org") for r in agreement.get("recipients") or [] if isinstance(r, dict)}
    for name, dataset in (agreement.get("datasets") or {}).items():
        if not isinstance(dataset, dict):
            continue
        for org in dataset.get("recipient_fields") or {}:
            if org not in recipients:
                found.append(
                    (["datasets", name, "recipient_fields", org], "is not one of the recipients")
                )
    return found


def validate_file(
    path: Path, validator: jsonschema.protocols.Validator, ctx: Context | None = None
) -> list[Problem]:
    """Problems of one agreement file (errors, then warnings); empty when it is valid.
    Without `ctx` only the shape is checked (the schema and semantic_problems)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
        root = yaml.compose(text)
    except (OSError, yaml.YAMLError) as exc:
        return [Problem(name, "", None, f"cannot be read as YAML: {exc}")]
    if not isinstance(document, dict) or len(document) != 1:
        return [Problem(name, "", 1, "must hold exactly one agreement, keyed by its id")]
    ((key, agreement),) = document.items()
    node = next((v for k, v in root.value if k.value == str(key)), None)
    problems = []
    if key != path.stem:
        problems.append(Problem(name, "", 1, f"top-level key {key!r} must match the file name"))
    if not isinstance(agreement, dict):
        return [*problems, Problem(name, str(key), 1, "must be a mapping")]
    if agreement.get("id") != key:
        line = _line_of(node, ["id"])
        problems.append(Problem(name, "id", line, f"must equal the top-level key {key!r}"))
    for error in sorted(validator.iter_errors(agreement), key=lambda e: list(e.absolute_path)):
        steps = list(error.absolute_path)
        problems.append(Problem(name, _dotted(steps), _line_of(node, steps), error.message))
    for steps, message in semantic_problems(agreement):
        problems.append(Problem(name, _dotted(steps), _line_of(node, steps), message))
    if ctx is not None:
        for steps, message, severity in meaning_problems(str(key), agreement, ctx):
            problems.append(Problem(name, _dotted(steps), _line_of(node, steps), message, severity))
    return sorted(problems, key=lambda p: not p.is_error)


def validate_dir(policies_dir: Path, ctx: Context | None = None) -> tuple[int, list[Problem]]:
    """(number of agreement files, their problems) for `<policies_dir>/agreements/*.yaml`;
    with `ctx` their meaning too (accord.governance.meaning)."""
    schema = load_schema(policies_dir)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    files = sorted((policies_dir / "agreements").glob("*.y*ml"))
    problems = [p for f in files for p in validate_file(f, validator, ctx)]
    return len(files), problems


def context_for(policies_dir: Path, settings, against: str = "auto") -> Context:
    """The meaning checks' context: the hub's Avro records and organisations, today, and
    the baseline versions are compared with (`against`: auto, git, served or none)."""
    from accord.governance.meaning import (
        baseline_for,
        dataset_fields,
        known_organisations,
        today_utc,
    )

    baseline, note = baseline_for(policies_dir, against, settings)
    return Context(
        fields=dataset_fields(settings.schemas_dir),
        organisations=known_organisations(settings.home / "partners"),
        today=today_utc(),
        baseline=baseline,
        notes=[note],
    )


# Authority rules (`policies/authority/authority.yaml`, served as data.authority): who may
# publish which dataset, and to whom a request's owner refers requests.
AUTHORITY_FILE = ("authority", "authority.yaml")
AUTHORITY_SCHEMA = ("schemas", "authority", "schema.json")


def validate_authority(policies_dir: Path) -> list[Problem]:
    """Problems of the authority rules against their schema (the one OPA checks too:
    accord.authority decides nothing when they do not match); empty when valid."""
    import json

    path = policies_dir.joinpath(*AUTHORITY_FILE)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
        root = yaml.compose(text)
    except FileNotFoundError:
        return [Problem(name, "", None, "is missing: no one could publish anything")]
    except (OSError, yaml.YAMLError) as exc:
        return [Problem(name, "", None, f"cannot be read as YAML: {exc}")]
    schema = json.loads(policies_dir.joinpath(*AUTHORITY_SCHEMA).read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        steps = list(error.absolute_path)
        problems.append(Problem(name, _dotted(steps), _line_of(root, steps), error.message))
    return problems
