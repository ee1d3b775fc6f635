"""The Confluent wire format and the Avro codec, without a registry."""

import io
import json
import struct
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import fastavro
import pytest

from accord.core.errors import SchemaError, WireFormatError
from accord.core.serde import AvroSerde, encode_body, frame, parse_schema_text, unframe

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"


class FakeRegistry:
    """Stands in for the registry's id bookkeeping only; the codec under test is real."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}

    def register(self, subject: str, text: str) -> int:
        for schema_id, known in self.by_id.items():
            if known == text:
                return schema_id
        self.by_id[len(self.by_id) + 1] = text
        return len(self.by_id)

    def schema_by_id(self, schema_id: int) -> str:
        if schema_id not in self.by_id:  # as the real client turns the registry's 404
            raise SchemaError(f"schema registry: 40403: Schema {schema_id} not found")
        return self.by_id[schema_id]


def shielding_event() -> dict:
    return {
        "event_id": "6a8f7f3e-4a57-4c0e-8d0c-1f0f7a8d2b11",
        "occurred_at": datetime(2020, 6, 1, tzinfo=UTC),
        "source_org": "nhs-lothian",
        "schema_version": 1,
        "chi_number": "1403521239",
        "given_name": "Siobhán",
        "family_name": "Ó Briain",
        "date_of_birth": date(1952, 3, 14),
        "address_line1": "1 High Street",
        "address_line2": None,
        "town": "Edinburgh",
        "postcode": "EH1 1AA",
        "council_area": "City of Edinburgh",
        "health_board": "NHS Lothian",
        "clinical_risk_group": "SPECIFIC_CANCERS",
        "shielding_status": "SHIELDING",
        "contact_phone": None,
        "effective_date": date(2020, 6, 1),
    }


def test_frame_is_magic_byte_then_big_endian_id_then_body():
    data = frame(258, b"body")
    assert data[:5] == b"\x00\x00\x00\x01\x02"
    assert unframe(data) == (258, b"body")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "empty"),
        (b"\x00\x00", "shorter than the 5-byte header"),
        (b"\x01\x00\x00\x00\x01abc", "unknown magic byte 1"),
    ],
)
def test_unframe_rejects_what_is_not_wire_format(data, problem):
    with pytest.raises(WireFormatError, match=problem):
        unframe(data)


def test_round_trip_keeps_every_value_including_accents_and_dates():
    serde = AvroSerde(FakeRegistry(), SCHEMAS)
    data = serde.encode(
        "partner.nhs-lothian.shielding-list.v1-value", "ShieldingListEntry", shielding_event()
    )
    schema_id, record = serde.decode(data)
    assert schema_id == 1
    assert record == dict(shielding_event(), event_id=uuid.UUID(shielding_event()["event_id"]))


def test_bytes_decode_with_a_plain_avro_reader_given_the_registered_schema():
    """Any Confluent-format consumer reads our bytes: header, then a schemaless Avro body."""
    registry = FakeRegistry()
    serde = AvroSerde(registry, SCHEMAS)
    data = serde.encode("s-value", "ShieldingListEntry", shielding_event())
    magic, schema_id = struct.unpack(">bI", data[:5])
    parsed = fastavro.parse_schema(json.loads(registry.schema_by_id(schema_id)))

    assert magic == 0
    assert fastavro.schemaless_reader(io.BytesIO(data[5:]), parsed)["postcode"] == "EH1 1AA"


def test_a_record_missing_a_required_field_is_a_schema_error():
    serde = AvroSerde(FakeRegistry(), SCHEMAS)
    event = shielding_event()
    del event["postcode"]
    with pytest.raises(SchemaError, match="ShieldingListEntry"):
        serde.encode("s-value", "ShieldingListEntry", event)


def test_a_truncated_body_is_a_wire_format_error():
    serde = AvroSerde(FakeRegistry(), SCHEMAS)
    data = serde.encode("s-value", "ShieldingListEntry", shielding_event())
    with pytest.raises(WireFormatError, match="schema id 1"):
        serde.decode(data[:20])


def test_encode_body_matches_fastavro_schemaless_writer():
    parsed = parse_schema_text((SCHEMAS / "QuarantinedRecord.avsc").read_text())
    record = {
        "quarantine_id": "6a8f7f3e-4a57-4c0e-8d0c-1f0f7a8d2b11",
        "quarantined_at": datetime(2026, 1, 1, tzinfo=UTC),
        "origin": "FILE",
        "original": b"a,b,c",
        "reason_code": "required",
        "reason": "family_name is required",
    }
    body = encode_body(parsed, record)

    assert fastavro.schemaless_reader(io.BytesIO(body), parsed)["original"] == b"a,b,c"


# --- encode errors never quote the datum ---

SECRET_NAME = "Siobhán Secret-Name"
SECRET_CHI = "1403521239"


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"given_name": 12345}, "given_name", "TypeError|ValueError"),
        ({"contact_phone": 7700900456}, "contact_phone", "ValueError|TypeError"),
        # fastavro names no field for enums and logical types: the message then names none.
        ({"shielding_status": SECRET_NAME}, None, "ValueError"),
        ({"date_of_birth": SECRET_NAME}, None, "ValueError|TypeError|AttributeError"),
        ({"schema_version": SECRET_CHI}, "schema_version", "ValueError|TypeError"),
        ({"postcode": None}, "postcode", "ValueError|TypeError"),
    ],
)
def test_an_encode_error_names_record_field_and_error_type_only(changes, field, error):
    serde = AvroSerde(FakeRegistry(), SCHEMAS)
    event = dict(shielding_event(), given_name=SECRET_NAME, **{"chi_number": SECRET_CHI})
    event.update(changes)
    with pytest.raises(SchemaError) as failed:
        serde.encode("s-value", "ShieldingListEntry", event)
    message = str(failed.value)
    assert message.startswith("a ShieldingListEntry record could not be encoded")
    assert (f"(field {field})" in message) if field else ("(field" not in message)
    assert message.rsplit(": ", 1)[1] in error.split("|")
    for datum in (SECRET_NAME, SECRET_CHI, "7700900456", "12345", "Siobh"):
        assert datum not in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_encode_body_names_the_schema_when_no_record_name_is_given():
    parsed = parse_schema_text((SCHEMAS / "ShieldingListEntry.avsc").read_text())
    with pytest.raises(SchemaError) as failed:
        encode_body(parsed, ["not", "a", "record", SECRET_NAME])
    assert str(failed.value).startswith("a ShieldingListEntry record could not be encoded")
    assert SECRET_NAME not in str(failed.value)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("'Ann Kerr' (type <class 'str'>) do not match ['null', 'int'] on field n", "n"),
        ("must be string on field given_name", "given_name"),
        ("no value and no default for postcode", "postcode"),
        # A value that imitates fastavro's wording is never taken for a field name.
        ("'x on field given_name' (type <class 'str'>) do not match 'int' on field n", "n"),
        ("'1403521239' is not a valid uuid on field Ann Kerr", None),
        ("boom on field not_in_the_schema", None),
        ("something else entirely: 'Ann Kerr'", None),
    ],
)
def test_encode_failure_takes_only_a_schema_field_name_from_fastavro(message, expected):
    from accord.core.serde import encode_failure

    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "n", "type": "int"}, {"name": "given_name", "type": "string"}]
        + [{"name": "postcode", "type": "string"}],
    }
    text = encode_failure("R", ValueError(message), schema)
    assert (
        text
        == "a R record could not be encoded"
        + (f" (field {expected})" if expected else "")
        + ": ValueError"
    )
    assert "Ann Kerr" not in text and "1403521239" not in text


def test_a_decode_error_does_not_quote_the_body():
    serde = AvroSerde(FakeRegistry(), SCHEMAS)
    data = serde.encode("s-value", "ShieldingListEntry", shielding_event())
    with pytest.raises(WireFormatError) as failed:
        serde.decode(data[:-8])
    assert "schema id 1" in str(failed.value)
    assert "Siobh" not in str(failed.value) and str(failed.value).endswith(")")
