"""Every .avsc follows the schema conventions (one record per file, documented, evolvable)."""

import json
from pathlib import Path

import fastavro
import pytest

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "schemas" / "avro").glob("*.avsc"))
REQUIRED = {
    "ShieldingListEntry",
    "SupportRequest",
    "SupportCase",
    "DecisionRecord",
    "QuarantinedRecord",
}
LOGICAL_ON_FIELD = {"uuid", "date", "timestamp-millis", "timestamp-micros", "decimal"}


def walk_types(avro_type):
    """Every nested type of a field's type."""
    yield avro_type
    if isinstance(avro_type, list):
        for branch in avro_type:
            yield from walk_types(branch)
    elif isinstance(avro_type, dict):
        if avro_type.get("type") == "array":
            yield from walk_types(avro_type["items"])
        if avro_type.get("type") == "record":
            for field in avro_type["fields"]:
                yield from walk_types(field["type"])


def test_the_first_schema_set_is_complete():
    assert REQUIRED <= {path.stem for path in SCHEMAS}


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_schema_follows_the_conventions(path):
    schema = json.loads(path.read_text())
    fastavro.parse_schema(schema)
    assert schema["type"] == "record" and schema["name"] == path.stem
    assert schema.get("doc"), "the record needs a doc"
    for field in schema["fields"]:
        name = field["name"]
        assert field.get("doc"), f"{name} needs a doc"
        assert name == name.lower() and " " not in name, f"{name} is not snake_case"
        assert "logicalType" not in field, f"{name}: logicalType must be nested in the type"
        if isinstance(field["type"], list) and "null" in field["type"]:
            assert field["type"][0] == "null" and field.get("default", "missing") is None, (
                f"{name}: nullable fields are ['null', T] with default null"
            )
        for nested in walk_types(field["type"]):
            if isinstance(nested, dict) and nested.get("type") == "enum":
                assert nested.get("default") in nested["symbols"], f"{name}: enum needs a default"
                assert nested.get("doc"), f"{name}: enum needs a doc"


def test_dates_and_times_use_logical_types():
    schema = json.loads((SCHEMAS[0].parent / "ShieldingListEntry.avsc").read_text())
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types["date_of_birth"] == {"type": "int", "logicalType": "date"}
    assert types["occurred_at"] == {"type": "long", "logicalType": "timestamp-millis"}
