"""The shared pipeline: event ids, keys, provenance, quarantine entries and validate_event."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import fastavro
import pytest

from accord.core.topics import DATASET_RECORDS
from accord.ingest.pipeline import (
    MAX_ORIGINAL_BYTES,
    Accepted,
    Location,
    Pipeline,
    Rejected,
    validate_event,
)
from accord.ingest.validation import Clock, RowInvalid

SECRET = "unit-test-secret"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CLOCK = Clock(now=NOW, today=NOW.date())
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"
HERE = Location("FILE", "list.csv line 7", "row 7", 7)


def schema(name: str):
    return fastavro.parse_schema(json.loads((SCHEMAS / f"{name}.avsc").read_text()))


def avro_round_trip(record_name: str, record: dict) -> dict:
    """Encode with the real schema and decode again: what a Kafka consumer would see."""
    parsed = schema(record_name)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    return fastavro.schemaless_reader(io.BytesIO(buffer.getvalue()), parsed, None)


SHIELDING = {
    "chi_number": "1403521239",
    "given_name": "Siobhán",
    "family_name": "Ó Briain",
    "date_of_birth": "1952-03-14",
    "address_line1": "Flat 3F2",
    "address_line2": "12 Marchmont Road",
    "town": "Edinburgh",
    "postcode": "EH9 1HB",
    "council_area": "City of Edinburgh",
    "health_board": "NHS Lothian",
    "clinical_risk_group": "SEVERE_RESPIRATORY",
    "shielding_status": "SHIELDING",
    "contact_phone": "07700 900456",
    "effective_date": "2020-06-01",
}
REQUEST = {
    "occurred_at": "2020-04-01T10:15:00Z",
    "request_id": "EDI-42",
    "family_name": "Kerr",
    "postcode": "EH1 1AA",
    "needs": ["food"],
    "urgency": "immediate",
    "channel": "helpline",
}
OUTCOME = {
    "occurred_at": "2020-04-02T10:15:00Z",
    "request_id": "EDI-42",
    "outcome": "delivered",
}
CONSENT = {
    "occurred_at": "2020-04-03T10:15:00Z",
    "nhs_number": "9434765919",
    "scope": "ALL_SHARING",
    "change": "OPT_OUT",
}
RAW = {
    "shielding-list": SHIELDING,
    "support-request": REQUEST,
    "support-outcome": OUTCOME,
    "consent-change": CONSENT,
}


def process(dataset: str, raw: dict, org: str = "nhs-lothian") -> Accepted | Rejected:
    return Pipeline(org, dataset, CLOCK).process(raw, HERE, b"original bytes")


def accepted(dataset: str, raw: dict, org: str = "nhs-lothian") -> Accepted:
    outcome = process(dataset, raw, org)
    assert isinstance(outcome, Accepted), getattr(outcome, "reason", "")
    return outcome


def rejected(dataset: str, raw: dict, org: str = "nhs-lothian") -> Rejected:
    outcome = process(dataset, raw, org)
    assert isinstance(outcome, Rejected)
    return outcome


# --- events fit their schema ---


@pytest.mark.parametrize("dataset", sorted(RAW))
def test_every_dataset_builds_an_event_its_avro_schema_accepts(dataset: str) -> None:
    event = accepted(dataset, RAW[dataset]).event
    decoded = avro_round_trip(DATASET_RECORDS[dataset], event)
    assert str(decoded["event_id"]) == event["event_id"]
    assert decoded["source_org"] == "nhs-lothian" and decoded["schema_version"] == 1


def test_shielding_event_occurred_at_midnight_of_its_effective_date() -> None:
    assert accepted("shielding-list", SHIELDING).event["occurred_at"] == datetime(
        2020, 6, 1, tzinfo=UTC
    )
    ahead = dict(SHIELDING, effective_date=(NOW + timedelta(days=30)).date().isoformat())
    assert accepted("shielding-list", ahead).event["occurred_at"] == NOW  # never ahead


def test_a_partners_own_recording_time_is_used_and_checked() -> None:
    given = dict(SHIELDING, occurred_at="2020-05-31T08:00:00Z")
    assert accepted("shielding-list", given).event["occurred_at"] == datetime(
        2020, 5, 31, 8, tzinfo=UTC
    )
    future = dict(SHIELDING, occurred_at="2030-01-01T00:00:00Z")
    assert rejected("shielding-list", future).code == "datetime_future"


# --- event ids ---


def test_same_row_same_event_id_and_key() -> None:
    first, again = accepted("shielding-list", SHIELDING), accepted("shielding-list", SHIELDING)
    assert (first.event_id, first.key) == (again.event_id, again.key)
    uuid.UUID(first.event_id)


def test_event_id_follows_the_normalised_content() -> None:
    spaced = dict(SHIELDING, postcode="eh91hb", given_name="  Siobhán ")
    assert (
        accepted("shielding-list", spaced).event_id
        == accepted("shielding-list", SHIELDING).event_id
    )
    changed = dict(SHIELDING, shielding_status="NOT_SHIELDING")
    assert (
        accepted("shielding-list", changed).event_id
        != accepted("shielding-list", SHIELDING).event_id
    )


def test_event_id_differs_per_partner() -> None:
    lothian = accepted("support-request", REQUEST, "city-of-edinburgh")
    fife = accepted("support-request", REQUEST, "fife")
    assert lothian.event_id != fife.event_id


def test_a_partners_own_event_id_is_kept_in_canonical_form() -> None:
    given = "0B5F3C8E-7D1A-4F26-B1E4-5A9C2D7E6F10"
    assert accepted("support-outcome", dict(OUTCOME, event_id=given)).event_id == given.lower()
    bad = rejected("support-outcome", dict(OUTCOME, event_id="42"))
    assert (bad.field, bad.code) == ("event_id", "event_id_format")


# --- provenance ---


def test_source_org_comes_from_the_publisher() -> None:
    assert (
        accepted("support-outcome", dict(OUTCOME, source_org="fife"), "fife").event["source_org"]
        == "fife"
    )
    impostor = rejected("support-outcome", dict(OUTCOME, source_org="nhs-lothian"), "fife")
    assert (impostor.field, impostor.code) == ("source_org", "source_org_mismatch")
    assert impostor.quarantine["source_org"] == "fife"


# --- keys ---


@pytest.mark.parametrize(
    ("dataset", "raw", "org"),
    [
        ("shielding-list", SHIELDING, "nhs-lothian"),
        ("consent-change", CONSENT, "nhs-lothian"),
        ("support-request", REQUEST, "city-of-edinburgh"),
        ("support-outcome", OUTCOME, "city-of-edinburgh"),
    ],
)
def test_partner_records_are_keyed_by_their_event_id_never_by_an_identifier(
    dataset: str, raw: dict, org: str
) -> None:
    """A partner computes its records' keys without the hub's secret; no identifier or
    name is in them (the hub pseudonymises inside the worker)."""
    outcome = accepted(dataset, raw, org)
    assert outcome.key == outcome.event_id.encode()
    for value in ("1403521239", "9434765919", "EDI-42", "Kerr"):
        assert value.encode() not in outcome.key


# --- quarantine entries ---


def test_rejection_becomes_a_quarantine_entry_with_everything_to_fix_it() -> None:
    bad = dict(SHIELDING, chi_number="1403521230", postcode="EH9 1H")
    outcome = Pipeline("nhs-lothian", "shielding-list", CLOCK).process(
        bad, HERE, b"1403521230,Siobhan,..."
    )
    assert isinstance(outcome, Rejected)
    entry = outcome.quarantine
    assert entry["origin"] == "FILE" and entry["location"] == "list.csv line 7"
    assert entry["line_number"] == 7 and entry["original"] == b"1403521230,Siobhan,..."
    assert (entry["reason_code"], entry["field"]) == ("chi_check_digit", "chi_number")
    assert "check digit" in entry["reason"] and "Postcode" in entry["reason"]
    assert "1403521230" not in entry["reason"]
    decoded = avro_round_trip("QuarantinedRecord", entry)
    assert decoded["original"] == b"1403521230,Siobhan,..."
    again = Pipeline("nhs-lothian", "shielding-list", CLOCK).process(
        bad, HERE, b"1403521230,Siobhan,..."
    )
    assert again.quarantine["quarantine_id"] == entry["quarantine_id"]  # stable across retries


def test_huge_originals_are_kept_truncated_and_say_so() -> None:
    pipeline = Pipeline("nhs-lothian", "shielding-list", CLOCK)
    huge = b"x" * (MAX_ORIGINAL_BYTES + 10)
    outcome = pipeline.process({}, HERE, huge)
    assert isinstance(outcome, Rejected)
    assert len(outcome.quarantine["original"]) == MAX_ORIGINAL_BYTES
    assert f"{MAX_ORIGINAL_BYTES + 10} bytes" in outcome.quarantine["reason"]


def test_http_rejections_are_located_by_batch_index() -> None:
    location = Location("HTTP", "HTTP batch record 3", "record 3")
    outcome = Pipeline("fife", "support-outcome", CLOCK).process({}, location, b"{}")
    assert isinstance(outcome, Rejected)
    assert outcome.quarantine["origin"] == "HTTP"
    assert outcome.quarantine["location"] == "HTTP batch record 3"
    assert outcome.quarantine["line_number"] is None


def test_unknown_dataset_is_refused() -> None:
    with pytest.raises(ValueError):
        Pipeline("fife", "weather")


# --- validate_event: native Kafka producers ---


def typed(dataset: str, raw: dict, org: str = "nhs-lothian") -> dict:
    """A record as the worker gets it: built, encoded with the schema and decoded again."""
    return avro_round_trip(DATASET_RECORDS[dataset], accepted(dataset, raw, org).event)


@pytest.mark.parametrize("dataset", sorted(RAW))
def test_validate_event_accepts_what_the_pipeline_publishes(dataset: str) -> None:
    record = typed(dataset, RAW[dataset])
    result = validate_event(dataset, record, org="nhs-lothian", now=NOW)
    assert result["event_id"] == str(record["event_id"])
    assert {k: v for k, v in result.items() if k != "event_id"} == {
        k: v for k, v in record.items() if k != "event_id"
    }


def test_validate_event_normalises_like_the_file_path() -> None:
    record = typed("shielding-list", SHIELDING)
    record.update(postcode="eh9 1hb", given_name="  Siobha\u0301n ", contact_phone="07700900456")
    result = validate_event("shielding-list", record, now=NOW)
    assert (result["postcode"], result["given_name"], result["contact_phone"]) == (
        "EH9 1HB",
        "Siobhán",
        "+447700900456",
    )


def test_validate_event_keeps_fields_it_does_not_know() -> None:
    record = dict(typed("support-outcome", OUTCOME), added_in_v2="kept")
    assert validate_event("support-outcome", record, now=NOW)["added_in_v2"] == "kept"


@pytest.mark.parametrize(
    ("dataset", "changes", "expected"),
    [
        ("shielding-list", {"chi_number": "1403521230"}, [("chi_number", "chi_check_digit")]),
        (
            "shielding-list",
            {"date_of_birth": date(1952, 3, 15)},
            [("date_of_birth", "chi_dob_mismatch")],
        ),
        ("shielding-list", {"postcode": "BFPO 57"}, [("postcode", "postcode_bfpo")]),
        ("shielding-list", {"family_name": "=cmd()"}, [("family_name", "formula_like")]),
        (
            "shielding-list",
            {"family_name": "Kerr\u202e"},
            [("family_name", "invisible_characters")],
        ),
        (
            "support-request",
            {"given_name": "A\u200bnn"},
            [("given_name", "invisible_characters")],
        ),
        (
            "consent-change",
            {"family_name": "\u2067Kerr"},
            [("family_name", "invisible_characters")],
        ),
        ("shielding-list", {"event_id": "not-a-uuid"}, [("event_id", "event_id_format")]),
        ("shielding-list", {"source_org": "fife"}, [("source_org", "source_org_mismatch")]),
        ("shielding-list", {"source_org": ""}, [("source_org", "required")]),
        (
            "support-request",
            {"occurred_at": NOW + timedelta(hours=1)},
            [("occurred_at", "datetime_future")],
        ),
        ("support-request", {"occurred_at": None}, [("occurred_at", "required")]),
        ("support-request", {"needs": []}, [("needs", "required")]),
        ("support-outcome", {"request_org": "Not An Org"}, [("request_org", "org_format")]),
        ("consent-change", {"nhs_number": None}, [("chi_number", "identity_missing")]),
    ],
)
def test_validate_event_rejects(dataset: str, changes: dict, expected: list) -> None:
    record = dict(typed(dataset, RAW[dataset]), **changes)
    with pytest.raises(RowInvalid) as caught:
        validate_event(dataset, record, org="nhs-lothian", now=NOW)
    assert [(e.field, e.rule) for e in caught.value.errors] == expected


def test_validate_event_without_org_does_not_check_ownership() -> None:
    record = dict(typed("support-outcome", OUTCOME), source_org="fife")
    assert validate_event("support-outcome", record, now=NOW)["source_org"] == "fife"


def test_validate_event_unknown_dataset() -> None:
    with pytest.raises(ValueError):
        validate_event("weather", {}, now=NOW)
