"""decode_as: only a record schema registered under the topic's own subject, read as the
hub's own schema reads it (fields an evolved schema adds are dropped)."""

import json
from pathlib import Path

import pytest

from accord.core.errors import ForeignSchemaError, SchemaError, WireFormatError
from accord.core.serde import AvroSerde, encode_body, frame, parse_schema_text

from .test_serde import shielding_event

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"
SUBJECT = "partner.nhs-lothian.shielding-list.v1-value"


class SubjectRegistry:
    """Schema ids and the subjects they are registered under (the codec is real)."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.uses: dict[int, set[str]] = {}

    def register(self, subject: str, text: str) -> int:
        schema_id = next((i for i, t in self.by_id.items() if t == text), len(self.by_id) + 1)
        self.by_id[schema_id] = text
        self.uses.setdefault(schema_id, set()).add(subject)
        return schema_id

    def schema_by_id(self, schema_id: int) -> str:
        if schema_id not in self.by_id:
            raise SchemaError(f"schema registry: 40403: Schema {schema_id} not found")
        return self.by_id[schema_id]

    def subjects_of(self, schema_id: int) -> list[str]:
        self.schema_by_id(schema_id)
        return sorted(self.uses[schema_id])


def evolved_with_bytes() -> str:
    schema = json.loads((SCHEMAS / "ShieldingListEntry.avsc").read_text())
    schema["fields"].append(
        {"name": "photo", "type": ["null", "bytes"], "default": None, "doc": "added later"}
    )
    return json.dumps(schema)


@pytest.fixture
def setup():
    registry = SubjectRegistry()
    return registry, AvroSerde(registry, SCHEMAS)


def test_the_hubs_own_schema_under_the_topics_subject_decodes(setup):
    registry, serde = setup
    data = serde.encode(SUBJECT, "ShieldingListEntry", shielding_event())
    _, record = serde.decode_as(data, SUBJECT, "ShieldingListEntry")
    assert record["postcode"] == "EH1 1AA"


def test_fields_an_evolved_schema_adds_are_dropped(setup):
    registry, serde = setup
    text = evolved_with_bytes()
    schema_id = registry.register(SUBJECT, text)
    body = encode_body(parse_schema_text(text), {**shielding_event(), "photo": b"\x00\xff"})
    _, record = serde.decode_as(frame(schema_id, body), SUBJECT, "ShieldingListEntry")
    assert "photo" not in record and record["given_name"] == "Siobhán"


def test_a_schema_id_of_another_topics_subject_is_foreign(setup):
    registry, serde = setup
    data = serde.encode(
        "partner.nhs-fife.shielding-list.v1-value", "ShieldingListEntry", {**shielding_event()}
    )
    registry.uses[int.from_bytes(data[1:5], "big")] = {"partner.nhs-fife.shielding-list.v1-value"}
    with pytest.raises(ForeignSchemaError, match="not registered under subject"):
        serde.decode_as(data, SUBJECT, "ShieldingListEntry")


@pytest.mark.parametrize("text", ['"string"', '{"type": "enum", "name": "E", "symbols": ["A"]}'])
def test_a_non_record_schema_is_refused(setup, text):
    registry, serde = setup
    schema_id = registry.register(SUBJECT, text)
    with pytest.raises(SchemaError, match="not a record"):
        serde.decode_as(frame(schema_id, b"\x02A"), SUBJECT, "ShieldingListEntry")


def test_an_unknown_schema_id_is_a_schema_error(setup):
    _, serde = setup
    with pytest.raises(SchemaError, match="not found"):
        serde.decode_as(frame(999, b""), SUBJECT, "ShieldingListEntry")


def test_an_unreadable_body_names_no_value(setup):
    _, serde = setup
    data = serde.encode(SUBJECT, "ShieldingListEntry", shielding_event())
    with pytest.raises(WireFormatError) as error:
        serde.decode_as(data[:40], SUBJECT, "ShieldingListEntry")
    assert "Siob" not in str(error.value) and "1403521239" not in str(error.value)


def test_a_record_schema_the_hubs_cannot_resolve_is_refused(setup):
    registry, serde = setup
    other = json.dumps(
        {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
    )
    schema_id = registry.register(SUBJECT, other)
    with pytest.raises(WireFormatError, match="cannot be read as ShieldingListEntry"):
        serde.decode_as(frame(schema_id, b"\x02"), SUBJECT, "ShieldingListEntry")
