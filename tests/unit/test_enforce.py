"""The minimisation boundary and the audit record, as pure functions."""

from datetime import UTC, date, datetime

from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.worker.enforce import (
    Checked,
    Incoming,
    decision_record,
    derive_decision_id,
    policy_fields,
    project_case,
)

NOW = datetime(2026, 11, 27, tzinfo=UTC)
RECORD = {
    "event_id": "6a8f7f3e-4a57-4c0e-8d0c-1f0f7a8d2b11",
    "chi_number": "1403521239",
    "given_name": "Ann",
    "family_name": "Kerr",
    "date_of_birth": date(1952, 3, 14),
    "address_line1": "1 High Street",
    "address_line2": None,
    "town": "Edinburgh",
    "postcode": "EH1 1AA",
    "council_area": "City of Edinburgh",
    "clinical_risk_group": "SPECIFIC_CANCERS",
    "shielding_status": "SHIELDING",
    "contact_phone": "+447700900123",
}
ALLOW = {
    "record_id": RECORD["event_id"],
    "recipient": "city-of-edinburgh",
    "agreement_id": "DSA-010",
    "agreement_version": 1,
    "allow": True,
    "fields_released": ["council_area", "family_name", "given_name", "shielding_status"],
    "obligations": [],
    "reasons": ["shared under DSA-010 clause 2.1"],
}


def case(decision=ALLOW):
    return project_case(
        RECORD,
        decision,
        subject_key="ab" * 32,
        decision_id="d1",
        policy_revision="r1",
        updated_at=NOW,
    )


def test_only_released_fields_leave():
    projected = case()
    assert projected["given_name"] == "Ann" and projected["council_area"] == "City of Edinburgh"
    for withheld in ("postcode", "address_line1", "contact_phone", "date_of_birth", "town"):
        assert projected[withheld] is None, withheld
    assert "chi_number" not in projected and "clinical_risk_group" not in projected


def test_is_shielding_is_derived_only_when_status_is_released():
    assert case()["is_shielding"] is True
    without = dict(ALLOW, fields_released=["given_name"])
    assert case(without)["is_shielding"] is None


def test_case_carries_provenance():
    projected = case()
    assert (projected["agreement_id"], projected["policy_revision"], projected["decision_id"]) == (
        "DSA-010",
        "r1",
        "d1",
    )
    assert projected["fields_released"] == sorted(ALLOW["fields_released"])


def test_policy_fields_are_json_safe():
    assert policy_fields(RECORD)["date_of_birth"] == "1952-03-14"


def checked() -> Checked:
    message = Incoming("partner.nhs-lothian.shielding-list.v1", 0, 7, b"k", b"v")
    return Checked(message, "nhs-lothian", "shielding-list", "ab" * 32, RECORD)


def test_decision_record_holds_the_pseudonymous_key_and_no_identifiers():
    deny = dict(ALLOW, allow=False, reasons=["denied: person lives in Fife"])
    audit = decision_record(
        checked(),
        deny,
        decision_id="d1",
        purpose="shielding-support",
        policy_revision="r1",
        decided_at=NOW,
    )
    assert audit["subject_key"] == "ab" * 32
    assert audit["fields_released"] == []  # nothing is released on deny, whatever the policy listed
    flat = repr(audit)
    for personal in ("1403521239", "Ann", "Kerr", "EH1 1AA", "+447700900123"):
        assert personal not in flat


def test_decision_ids_are_stable_per_event_recipient_and_revision():
    a = derive_decision_id("e1", "city-of-edinburgh", "r1")
    assert a == derive_decision_id("e1", "city-of-edinburgh", "r1")
    assert a != derive_decision_id("e1", "midlothian", "r1")
    assert a != derive_decision_id("e1", "city-of-edinburgh", "r2")


def test_partner_topic_names_carry_the_owner():
    topics = Topics(Settings(topic_prefix="t1."))
    assert (
        topics.partner("nhs-lothian", "shielding-list")
        == "t1.partner.nhs-lothian.shielding-list.v1"
    )
    assert topics.parse_partner("t1.partner.nhs-fife.shielding-list.v1") == (
        "nhs-fife",
        "shielding-list",
    )
