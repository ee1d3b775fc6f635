"""Every .avsc follows the schema conventions (one record per file, documented, evolvable).

The rules live in `accord.registry.conventions` (so `accord schemas check` enforces the
same ones); here every file is checked, and every rule is shown to fire on a bad schema.
"""

import json
from pathlib import Path

import pytest

from accord.registry.conventions import check_file, check_schema, full_name

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "schemas" / "avro").glob("*.avsc"))
REQUIRED = {
    "ShieldingListEntry",
    "SupportRequest",
    "SupportOutcome",
    "ConsentChange",
    "SupportCase",
    "DecisionRecord",
    "QuarantinedRecord",
}


def test_the_first_schema_set_is_complete():
    assert REQUIRED <= {path.stem for path in SCHEMAS}


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_schema_follows_the_conventions(path):
    assert [str(v) for v in check_file(path)] == []


def test_dates_and_times_use_logical_types():
    schema = json.loads((SCHEMAS[0].parent / "ShieldingListEntry.avsc").read_text())
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types["date_of_birth"] == {"type": "int", "logicalType": "date"}
    assert types["occurred_at"] == {"type": "long", "logicalType": "timestamp-millis"}


def record(*fields, **top):
    return {"type": "record", "name": "Probe", "doc": "A probe.", "fields": list(fields), **top}


def field(name="thing", type_="string", **extra):
    return {"name": name, "type": type_, "doc": "A thing.", **extra}


ENUM = {"type": "enum", "name": "Kind", "doc": "Kinds.", "symbols": ["A", "UNKNOWN"]}


@pytest.mark.parametrize(
    ("schema", "field_name", "rule"),
    [
        (record(field()), None, None),
        (record(field(), doc=""), "", "the record needs a doc"),
        (record({"name": "thing", "type": "string"}), "thing", "needs a doc"),
        (record(field("Thing")), "Thing", "snake_case"),
        (record(field("thing_Name")), "thing_Name", "snake_case"),
        (record(field(type_="int", logicalType="date")), "thing", "nest it in the type"),
        (record(field(type_={"type": "int", "logicalType": "date"})), None, None),
        (record(field(type_=["null", "string"], default=None)), None, None),
        (record(field(type_=["null", "string"])), "thing", '"default": null'),
        (record(field(type_=["string", "null"], default="x")), "thing", "null must come first"),
        (record(field(type_={**ENUM, "default": "UNKNOWN"})), None, None),
        (record(field(type_=ENUM)), "thing", "needs a default"),
        (record(field(type_={**ENUM, "default": "NOPE"})), "thing", "needs a default"),
        (
            record(field(type_={"type": "array", "items": {**ENUM, "default": "A", "doc": ""}})),
            "thing[]",
            "enum Kind needs a doc",
        ),
        (
            record(
                field(
                    type_={
                        "type": "record",
                        "name": "Inner",
                        "doc": "Inner.",
                        "fields": [{"name": "x", "type": "int"}],
                    }
                )
            ),
            "thing.x",
            "needs a doc",
        ),
        (record(field(), name="Other"), "", "must be named after its file"),
        ({"type": "enum", "name": "Probe", "symbols": ["A"]}, "", "top level must be a record"),
        (record(field(type_="nope")), "", "not a valid Avro schema"),
    ],
)
def test_each_convention_names_the_field_it_finds_broken(schema, field_name, rule):
    violations = check_schema(schema, "Probe.avsc", expected_name="Probe")
    if rule is None:
        assert violations == []
        return
    assert any(v.field == field_name and rule in v.rule for v in violations), violations
    assert all(str(v).startswith("Probe.avsc: ") for v in violations)


def test_full_name_joins_namespace_and_name():
    assert full_name({"name": "R", "namespace": "org.accord"}) == "org.accord.R"
    assert full_name({"name": "a.b.R", "namespace": "org.accord"}) == "a.b.R"
    assert full_name({"name": "R"}) == "R"
