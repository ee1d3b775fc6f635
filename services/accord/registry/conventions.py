"""The conventions every .avsc in schemas/avro/ follows, as checks that name file and field.

One record per file, named after the file; a `doc` on the record, every field and every
enum; snake_case field names (they pass unchanged from Avro to Python to Rego input);
logical types nested inside the type (on the field Avro silently ignores them); optional
fields as ["null", T] with a null default; enums with a default symbol so old readers
survive new symbols. Used by `accord schemas check` and by tests/unit/test_schemas.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from accord.registry import compatibility

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


@dataclass(frozen=True)
class Violation:
    """One broken convention: which file, which field ("" for the record) and what rule."""

    file: str
    field: str
    rule: str

    def __str__(self) -> str:
        where = f"field '{self.field}'" if self.field else "record"
        return f"{self.file}: {where}: {self.rule}"


def _named_types(avro_type: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, type) for every type nested in a field's type: unions, arrays, maps."""
    if isinstance(avro_type, list):
        for branch in avro_type:
            yield from _named_types(branch, path)
    elif isinstance(avro_type, dict):
        yield path, avro_type
        if avro_type.get("type") == "array":
            yield from _named_types(avro_type.get("items"), path + "[]")
        elif avro_type.get("type") == "map":
            yield from _named_types(avro_type.get("values"), path + "{}")


def _check_fields(record: dict[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    """(field path, rule broken) for the fields of `record` and of records nested in it."""
    for field in record.get("fields", []):
        name = field.get("name", "?")
        path = prefix + name
        if not field.get("doc"):
            yield path, "needs a doc"
        if not SNAKE_CASE.match(name):
            yield path, "name is not snake_case"
        if "logicalType" in field:
            yield (
                path,
                (
                    f"logicalType {field['logicalType']!r} is on the field, where Avro ignores it;"
                    f' nest it in the type: {{"type": ..., "logicalType": ...}}'
                ),
            )
        field_type = field.get("type")
        if isinstance(field_type, list) and "null" in field_type:
            if field_type[0] != "null":
                yield path, 'nullable fields are ["null", T]: null must come first'
            if "default" not in field or field["default"] is not None:
                yield path, 'nullable fields need "default": null'
        for type_path, nested in _named_types(field_type, path):
            kind = nested.get("type")
            if kind == "enum":
                if nested.get("default") not in nested.get("symbols", []):
                    yield (
                        type_path,
                        (
                            f"enum {nested.get('name')} needs a default that is one of its symbols"
                            " (e.g. UNKNOWN), so old readers survive new symbols"
                        ),
                    )
                if not nested.get("doc"):
                    yield type_path, f"enum {nested.get('name')} needs a doc"
            elif kind == "record":
                if not nested.get("doc"):
                    yield type_path, f"record {nested.get('name')} needs a doc"
                yield from _check_fields(nested, type_path + ".")


def check_schema(schema: Any, file: str, expected_name: str | None = None) -> list[Violation]:
    """Every convention `schema` (parsed JSON) breaks; an empty list means it follows them."""
    violations = []
    try:
        fastavro.parse_schema(schema)
        compatibility.parse(json.dumps(schema))
    except (
        ValueError,
        TypeError,
        KeyError,
        fastavro.schema.SchemaParseException,
        compatibility.InvalidSchema,
    ) as exc:
        violations.append(Violation(file, "", f"not a valid Avro schema: {exc}"))
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return [Violation(file, "", "one named record per file: the top level must be a record")]
    if expected_name is not None and schema.get("name") != expected_name:
        violations.append(
            Violation(file, "", f"record {schema.get('name')} must be named after its file")
        )
    if not schema.get("doc"):
        violations.append(Violation(file, "", "the record needs a doc"))
    try:
        violations += [Violation(file, path, rule) for path, rule in _check_fields(schema, "")]
    except (AttributeError, TypeError):
        pass  # malformed beyond the conventions; the parse error above says why
    return violations


def check_file(path: Path) -> list[Violation]:
    """Every convention the .avsc at `path` breaks."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [Violation(path.name, "", f"not readable JSON: {exc}")]
    return check_schema(schema, path.name, expected_name=path.stem)


def full_name(schema: dict[str, Any]) -> str:
    """The record's full name (namespace.name), which is how schemas find their subjects."""
    name = schema["name"]
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"
