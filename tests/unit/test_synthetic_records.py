"""The tests' people and partner records: deterministic, valid, and what the schemas take."""

from __future__ import annotations

from datetime import timedelta

from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import CONSENT_CHANGE, SHIELDING_LIST, SUPPORT_OUTCOME, SUPPORT_REQUEST
from accord.ingest.pipeline import validate_event
from accord.ingest.validation import validate_shielding_row
from accord.synthetic.records import (
    LOTHIAN,
    START,
    consent_change,
    lothian_people,
    outcomes_for,
    requests_for,
    shielding_entry,
    support_outcome,
    support_request,
)

from .test_serde import FakeRegistry


def test_lothian_people_are_the_same_every_time_valid_and_in_all_four_councils() -> None:
    rows = lothian_people(40)
    assert rows == lothian_people(40)
    assert len({row["chi_number"] for row in rows}) == 40
    for row in rows:
        validate_shielding_row(row)
    assert {row["council_area"] for row in rows} == set(LOTHIAN)


def test_every_builder_makes_a_record_the_file_rules_and_the_schema_accept() -> None:
    serde = AvroSerde(FakeRegistry(), Settings().schemas_dir)  # type: ignore[arg-type]
    row = lothian_people(3)[2]
    records = [
        (SHIELDING_LIST, "ShieldingListEntry", "nhs-lothian", shielding_entry(row)),
        (SUPPORT_REQUEST, "SupportRequest", "midlothian", support_request(row, "R-1", at=START)),
        (
            SUPPORT_REQUEST,
            "SupportRequest",
            "midlothian",
            support_request(row, "R-2", at=START, with_chi=False, needs=["FINANCIAL"]),
        ),
        (
            SUPPORT_OUTCOME,
            "SupportOutcome",
            "midlothian",
            support_outcome("midlothian", "R-1", at=START),
        ),
        (
            CONSENT_CHANGE,
            "ConsentChange",
            "nhs-lothian",
            consent_change(row, "nhs-lothian", "OPT_OUT", at=START, with_chi=False),
        ),
    ]
    for dataset, record_name, org, record in records:
        assert record["source_org"] == org
        validate_event(dataset, record, org=org)
        _, decoded = serde.decode(serde.encode(f"{dataset}-value", record_name, record))
        assert str(decoded["event_id"]) == record["event_id"]
    assert records[2][3]["chi_number"] is None and records[2][3]["needs"] == ["FINANCIAL"]
    assert records[4][3]["chi_number"] is None and records[4][3]["postcode"] == row["postcode"]


def test_requests_for_every_second_person_and_an_outcome_for_every_second_request() -> None:
    rows = lothian_people(8)
    requests = requests_for(rows)
    assert [r["request_id"] for _, r in requests] == ["REQ-0", "REQ-2", "REQ-4", "REQ-6"]
    assert all(org == r["source_org"] for org, r in requests)
    outcomes = outcomes_for(requests)
    assert [o["request_id"] for _, o in outcomes] == ["REQ-0", "REQ-4"]
    assert outcomes[0][1]["occurred_at"] == requests[0][1]["occurred_at"] + timedelta(days=1)
