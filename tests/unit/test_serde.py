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
