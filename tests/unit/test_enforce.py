"""The minimisation boundary and the audit record, as pure functions."""

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import fastavro

from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.pipeline.decision import decision_record, derive_decision_id, project_case

NOW = datetime(2026, 11, 27, tzinfo=UTC)
FIELDS = {
    "event_id": "6a8f7f3e-4a57-4c0e-8d0c-1f0f7a8d2b11",
    "chi_number": "1403521239",
    "given_name": "Ann",
    "family_name": "Kerr",
    "date_of_birth": "1952-03-14",
    "address_line1": "1 High Street",
    "address_line2": None,
    "town": "Edinburgh",
    "postcode": "EH1 1AA",
    "council_area": "City of Edinburgh",
    "clinical_risk_group": "SPECIFIC_CANCERS",
    "shielding_status": "SHIELDING",
    "contact_phone": "+447700900123",
}
CASE = {
    "case_key": "ab" * 32,
    "status": "OPEN",
    "closed_reason": None,
    "needs": ["FOOD"],
    "priority": "URGENT",
    "priority_reasons": ["urgent: urgent unmet food need"],
    "latest_outcome": None,
    "latest_outcome_at": None,
    "opened_at": "2020-06-01T00:00:00.000+00:00",
    "open_requests": 1,
    "match_method": "chi",
    "source": {
        "org": "nhs-lothian",
        "dataset": "shielding-list",
        "event_id": FIELDS["event_id"],
        "fields": FIELDS,
    },
    "subject": {"opted_out": False},
    "as_of": "2020-06-02T00:00:00.000+00:00",
}
ALLOW = {
    "record_id": CASE["case_key"],
    "recipient": "city-of-edinburgh",
    "agreement_id": "DSA-010",
    "agreement_version": 1,
    "allow": True,
    "fields_released": [
        "council_area",
        "family_name",
        "given_name",
        "needs",
        "opened_at",
        "priority",
        "priority_reasons",
        "shielding_status",
    ],
    "obligations": [],
    "reasons": ["shared under DSA-010 clause 2.1"],
}


def project(decision=ALLOW, case=CASE):
    return project_case(case, decision, decision_id="d1", policy_revision="r1", updated_at=NOW)


def test_only_released_fields_leave():
    projected = project()
    assert projected["given_name"] == "Ann" and projected["council_area"] == "City of Edinburgh"
    for withheld in ("postcode", "address_line1", "contact_phone", "date_of_birth", "town"):
        assert projected[withheld] is None, withheld
    assert "chi_number" not in projected and "clinical_risk_group" not in projected


def test_a_released_date_of_birth_becomes_a_date():
    released = dict(ALLOW, fields_released=["date_of_birth"])
    assert project(released)["date_of_birth"] == date(1952, 3, 14)


def test_is_shielding_is_derived_only_when_status_is_released():
    assert project()["is_shielding"] is True
    assert project(dict(ALLOW, fields_released=["given_name"]))["is_shielding"] is None


def test_case_carries_needs_priority_and_provenance():
    projected = project()
    assert projected["needs"] == ["FOOD"] and projected["priority"] == "URGENT"
    assert projected["priority_reasons"] == ["urgent: urgent unmet food need"]
    assert (projected["agreement_id"], projected["policy_revision"], projected["decision_id"]) == (
        "DSA-010",
        "r1",
        "d1",
    )
    assert projected["opened_at"] == datetime(2020, 6, 1, tzinfo=UTC)
    assert projected["fields_released"] == sorted(ALLOW["fields_released"])


def test_decision_record_holds_the_pseudonymous_key_and_no_identifiers():
    deny = dict(ALLOW, allow=False, reasons=["denied: person lives in Fife"])
    audit = decision_record(
        CASE,
        deny,
        decision_id="d1",
        purpose="shielding-support",
        policy_revision="r1",
        decided_at=NOW,
    )
    assert audit["subject_key"] == "ab" * 32
    assert audit["fields_released"] == []  # nothing is released on deny, whatever was listed
    flat = repr(audit)
    for personal in ("1403521239", "Ann", "Kerr", "EH1 1AA", "+447700900123"):
        assert personal not in flat


def audit_of(decision):
    return decision_record(
        CASE,
        decision,
        decision_id="6f1d2a4e-3b7c-4c1e-9a52-0d6c1f3e8b71",
        purpose="shielding-support",
        policy_revision="r1",
        decided_at=NOW,
    )


def test_decision_record_carries_the_clauses_and_principles_cited():
    deny = dict(
        ALLOW,
        allow=False,
        reasons=["denied: person lives in Fife, not in City of Edinburgh's area: ..."],
        clauses=["4.1", "5.3"],
        principles=["data minimisation", "children merit specific protection"],
    )
    audit = audit_of(deny)
    assert audit["clauses"] == ["4.1", "5.3"]
    assert audit["principles"] == ["data minimisation", "children merit specific protection"]
    # A decision without them (an older policy, the fail-closed fallback) cites none.
    assert (audit_of(ALLOW)["clauses"], audit_of(ALLOW)["principles"]) == ([], [])


def test_decision_record_matches_the_avro_schema():
    schema_path = Path(__file__).parents[2] / "schemas" / "avro" / "DecisionRecord.avsc"
    schema = fastavro.parse_schema(json.loads(schema_path.read_text()))
    audit = audit_of(dict(ALLOW, clauses=["2.1"], principles=["lawfulness"]))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, audit)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, None)
    assert (decoded["clauses"], decoded["principles"]) == (["2.1"], ["lawfulness"])


def test_decision_ids_are_stable_per_case_version_recipient_and_revision():
    a = derive_decision_id(CASE, "city-of-edinburgh", "r1")
    # Two agreements naming one recipient decide apart: their ids differ.
    b = derive_decision_id(CASE, "city-of-edinburgh", "r1", "DSA-010")
    assert b != derive_decision_id(CASE, "city-of-edinburgh", "r1", "DSA-015") and a != b
    assert a == derive_decision_id(dict(CASE), "city-of-edinburgh", "r1")
    assert a != derive_decision_id(CASE, "midlothian", "r1")
    assert a != derive_decision_id(CASE, "city-of-edinburgh", "r2")
    assert a != derive_decision_id(
        dict(CASE, as_of="2020-06-03T00:00:00.000+00:00"), "city-of-edinburgh", "r1"
    )


def test_topic_names_carry_the_prefix_and_the_owner():
    topics = Topics(Settings(topic_prefix="t1."))
    assert (
        topics.partner("nhs-lothian", "shielding-list")
        == "t1.partner.nhs-lothian.shielding-list.v1"
    )
    assert topics.parse_partner("t1.partner.nhs-fife.shielding-list.v1") == (
        "nhs-fife",
        "shielding-list",
    )
    assert topics.internal("cases") == "t1.hub.cases"
