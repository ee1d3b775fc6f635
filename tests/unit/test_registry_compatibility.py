"""Apache Avro's checker decides; our messages name the field a partner has to fix."""

import json
from pathlib import Path

import pytest

from accord.registry.compatibility import InvalidSchema, check, field_path, parse
from accord.registry.modes import Direction

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"
BASE_TEXT = (SCHEMAS / "ShieldingListEntry.avsc").read_text()


def variant(change) -> str:
    schema = json.loads(BASE_TEXT)
    change(schema)
    return json.dumps(schema)


def add_optional(s):
    s["fields"].append(
        {"name": "nhs_number", "type": ["null", "string"], "default": None, "doc": "d"}
    )


def add_required(s):
    s["fields"].append({"name": "nhs_number", "type": "string", "doc": "d"})


def drop_chi(s):
    s["fields"] = [f for f in s["fields"] if f["name"] != "chi_number"]


def postcode_as_int(s):
    next(f for f in s["fields"] if f["name"] == "postcode")["type"] = "int"


def widen_schema_version(s):
    next(f for f in s["fields"] if f["name"] == "schema_version")["type"] = "long"


@pytest.mark.parametrize(
    ("level", "change", "expected"),
    [
        ("BACKWARD_TRANSITIVE", add_optional, None),
        ("FULL_TRANSITIVE", add_optional, None),
        ("BACKWARD_TRANSITIVE", add_required, ("READER_FIELD_MISSING_DEFAULT_VALUE", "nhs_number")),
        ("FORWARD", add_required, None),  # old readers ignore the new field
        ("BACKWARD_TRANSITIVE", drop_chi, None),  # new readers ignore the old field
        ("FORWARD_TRANSITIVE", drop_chi, ("READER_FIELD_MISSING_DEFAULT_VALUE", "chi_number")),
        ("FULL", drop_chi, ("READER_FIELD_MISSING_DEFAULT_VALUE", "chi_number")),
        ("BACKWARD_TRANSITIVE", postcode_as_int, ("TYPE_MISMATCH", "postcode")),
        ("FORWARD", postcode_as_int, ("TYPE_MISMATCH", "postcode")),
        ("BACKWARD", widen_schema_version, None),  # int -> long is a promotion Avro allows
        ("FORWARD", widen_schema_version, ("TYPE_MISMATCH", "schema_version")),
        ("NONE", postcode_as_int, None),
    ],
)
def test_the_checker_decides_and_the_message_names_the_field(level, change, expected):
    problems = check(level, variant(change), {1: BASE_TEXT})
    if expected is None:
        assert problems == []
        return
    kind, name = expected
    assert len(problems) == 1
    problem = problems[0]
    assert kind in problem.kinds
    assert any(f.startswith(name + " (") for f in problem.fields)
    assert name in str(problem)


def test_transitive_levels_check_every_version_not_only_the_latest():
    def chi_back_as_int(s):
        drop_chi(s)
        s["fields"].append({"name": "chi_number", "type": "int", "default": 0, "doc": "d"})

    history = {1: BASE_TEXT, 2: variant(drop_chi)}
    # Against v2 (no chi_number) the re-added field's default suffices; v1 wrote a string.
    assert check("BACKWARD", variant(chi_back_as_int), history) == []
    (problem,) = check("BACKWARD_TRANSITIVE", variant(chi_back_as_int), history)
    assert problem.version == 1 and problem.kinds == ("TYPE_MISMATCH",)


def test_a_forward_problem_names_the_old_schema_as_the_reader():
    (problem,) = check("FORWARD", variant(drop_chi), {1: BASE_TEXT})
    assert problem.direction is Direction.FORWARD
    assert "no default in the old schema and is missing from the new schema" in str(problem)


def test_enum_symbols_removed_without_a_default_are_refused():
    def drop_symbol(s):
        enum = next(f for f in s["fields"] if f["name"] == "shielding_status")["type"]
        enum["symbols"].remove("NOT_SHIELDING")
        del enum["default"]

    (problem,) = check("BACKWARD", variant(drop_symbol), {1: BASE_TEXT})
    assert problem.kinds == ("MISSING_ENUM_SYMBOLS",)
    assert "NOT_SHIELDING" in str(problem) and "shielding_status" in str(problem)


@pytest.mark.parametrize(
    ("location", "path"),
    [
        ("/fields/0/type", "outer"),
        ("/fields/0/type/fields/1/type", "outer.inner"),
        ("/fields/1/type/1", "maybe"),
        ("/fields/9", ""),  # out of range: no name rather than a wrong one
        ("/", ""),
    ],
)
def test_field_path_turns_checker_locations_into_names(location, path):
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {
                "name": "outer",
                "type": {
                    "type": "record",
                    "name": "O",
                    "fields": [{"name": "a", "type": "int"}, {"name": "inner", "type": "int"}],
                },
            },
            {"name": "maybe", "type": ["null", "string"]},
        ],
    }
    assert field_path(schema, location) == path


def test_unparseable_schemas_are_reported_as_invalid():
    with pytest.raises(InvalidSchema):
        parse('{"type": "record", "name": "R", "fields": [{"name": "x", "type": "nope"}]}')
