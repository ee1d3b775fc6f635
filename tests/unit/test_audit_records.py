"""One audit record per case decision: folding a case's decisions into one record, reading
both shapes back as per-recipient decisions, the gate writing one record per case, and
the audit index answering the same from either shape (no Kafka)."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro
import pytest

from accord.core.auditrecords import (
    ALLOW,
    DENY,
    WITHDRAW,
    case_record,
    case_records,
    outcome_of,
    recipient_decisions,
)
from accord.core.settings import Settings
from accord.governance import audit_index
from accord.pipeline.decision import Gate

from .test_gate_checks import GOOD, KEY, FakePolicy, FakeSerde

SCHEMA_PATH = Path(__file__).parents[2] / "schemas" / "avro" / "DecisionRecord.avsc"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
EVENT = "6a8f7f3e-4a57-4c0e-8d0c-1f0f7a8d2b11"


def decision(subject, recipient, outcome, minutes=0, event=EVENT, **extra) -> dict:
    """A per-recipient record as the gate's decision_record makes it (and as the audit
    held them before case records), with its outcome."""
    allow = outcome == ALLOW
    record = {
        "decision_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subject}{recipient}{minutes}{event}")),
        "decided_at": T0 + timedelta(minutes=minutes),
        "source_org": "nhs-lothian",
        "dataset": "shielding-list",
        "source_event_id": event,
        "recipient": recipient or None,
        "purpose": "shielding-support",
        "agreement_id": "DSA-010" if recipient else None,
        "agreement_version": 2 if recipient else None,
        "allow": allow,
        "fields_released": ["given_name", "postcode"] if allow else [],
        "obligations": ["pseudonymise:subject_key"] if allow else [],
        "reasons": {
            ALLOW: ["shared"],
            DENY: ["denied: person lives elsewhere, clause 4.1"],
            WITHDRAW: ["withdrawn: agreement DSA-010 is suspended"],
        }[outcome],
        "clauses": ["2.1"] if allow else ["4.1"],
        "principles": ["lawfulness"] if allow else ["data minimisation"],
        "policy_revision": "r1",
        "subject_key": subject,
        "outcome": outcome,
    }
    record.update(extra)
    return record


ONE_CASE = [
    decision("alice", "city-of-edinburgh", ALLOW),
    decision("alice", "community-food-network", WITHDRAW),
    decision("alice", "community-food-network", DENY),
    decision("alice", "", DENY),  # no agreement names a recipient
]


def avro_round_trip(record: dict) -> dict:
    schema = fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text()))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, {**record, "chain_previous": "0" * 64})
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, schema, None)


def test_a_case_record_holds_every_recipients_outcome_once_with_the_case_once():
    record = case_record(ONE_CASE)
    assert [(i["recipient"], i["outcome"]) for i in record["recipients"]] == [
        ("city-of-edinburgh", ALLOW),
        ("community-food-network", WITHDRAW),
        ("community-food-network", DENY),
        (None, DENY),
    ]
    assert [i["decision_id"] for i in record["recipients"]] == [d["decision_id"] for d in ONE_CASE]
    assert (record["subject_key"], record["source_event_id"], record["policy_revision"]) == (
        "alice",
        EVENT,
        "r1",
    )
    # The case's own fields say what left about the person, to anyone, and name no one.
    assert record["recipient"] is None and record["agreement_id"] is None
    assert record["allow"] is True and record["fields_released"] == ["given_name", "postcode"]
    first = record["recipients"][0]
    assert first["agreement_id"] == "DSA-010" and first["clauses"] == ["2.1"]
    assert record["recipients"][1]["reasons"] == ["withdrawn: agreement DSA-010 is suspended"]
    assert record["recipients"][3]["agreement_id"] is None
    # What is sent is what the schema holds.
    decoded = avro_round_trip(record)
    assert [i["outcome"] for i in decoded["recipients"]] == [ALLOW, WITHDRAW, DENY, DENY]
    assert decoded["recipients"][0]["fields_released"] == ["given_name", "postcode"]


def test_a_case_record_that_released_nothing_says_so():
    record = case_record([decision("bob", "west-lothian", DENY)])
    assert record["allow"] is False and record["fields_released"] == []


def test_the_case_decision_id_is_derived_from_the_decisions_it_holds():
    same = case_record([dict(d) for d in ONE_CASE])["decision_id"]
    assert case_record(ONE_CASE)["decision_id"] == same
    assert case_record(ONE_CASE[:2])["decision_id"] != same
    assert uuid.UUID(same).version == 5
    assert same not in {d["decision_id"] for d in ONE_CASE}


def test_decisions_of_different_cases_never_share_a_record():
    with pytest.raises(ValueError, match="subject_key"):
        case_record([decision("alice", "x", ALLOW), decision("bob", "x", ALLOW)])
    with pytest.raises(ValueError, match="decided_at"):
        case_record([decision("alice", "x", ALLOW), decision("alice", "y", ALLOW, 1)])
    with pytest.raises(ValueError):
        case_record([])


def test_case_records_fold_a_batch_per_key_in_first_seen_order():
    batch = [
        (b"alice", ONE_CASE[0]),
        (b"bob", decision("bob", "west-lothian", DENY)),
        (b"alice", ONE_CASE[1]),
    ]
    folded = case_records(batch)
    assert [key for key, _ in folded] == [b"alice", b"bob"]
    assert [len(r["recipients"]) for _, r in folded] == [2, 1]


# What the index reads of a decision (uuids compared as text: decoding makes UUIDs).
FLAT = (
    "decision_id",
    "decided_at",
    "source_org",
    "dataset",
    "source_event_id",
    "recipient",
    "purpose",
    "agreement_id",
    "agreement_version",
    "allow",
    "fields_released",
    "obligations",
    "reasons",
    "clauses",
    "principles",
    "policy_revision",
    "subject_key",
    "outcome",
)


def flat(d: dict) -> dict:
    return {k: str(d[k]) if k.endswith("_id") and d[k] else d[k] for k in FLAT}


def test_a_case_record_reads_back_as_the_per_recipient_decisions_it_was_made_of():
    record = avro_round_trip(case_record(ONE_CASE))
    back = recipient_decisions(record)
    assert [flat(d) for d in back] == [flat(d) for d in ONE_CASE]
    assert {str(d["case_decision_id"]) for d in back} == {str(record["decision_id"])}


def test_an_older_per_recipient_record_reads_back_as_itself():
    older = {k: v for k, v in ONE_CASE[1].items() if k != "outcome"}
    (back,) = recipient_decisions(older)
    assert back["outcome"] == WITHDRAW and back["case_decision_id"] == older["decision_id"]
    assert {k: back[k] for k in older} == older
    assert outcome_of(ONE_CASE[0]) == ALLOW and outcome_of(ONE_CASE[2]) == DENY
    # Decoded with the new schema, an older record has no recipients: still itself.
    (decoded,) = recipient_decisions({**older, "recipients": []})
    assert decoded["recipient"] == "community-food-network"


def test_an_outcome_added_later_reads_as_not_released():
    record = case_record(ONE_CASE[:1])
    record["recipients"][0]["outcome"] = "UNKNOWN"
    (back,) = recipient_decisions(record)
    assert back["allow"] is False


# --- the audit index answers the same from either shape ------------------------------


DECISIONS = [
    *ONE_CASE,
    decision("alice", "city-of-edinburgh", ALLOW, 5, event=str(uuid.uuid4())),
    decision("bob", "west-lothian", ALLOW, 10, fields_released=["given_name"]),
    decision("bob", "city-of-edinburgh", DENY, 10),
    decision(
        "carol",
        "city-of-edinburgh",
        DENY,
        60 * 24 * 40,
        clauses=["2.1", "4.1"],
        principles=["purpose limitation", "data minimisation"],
    ),
]


def index_of(tmp_path, name, records):
    db = audit_index.connect(tmp_path / f"{name}.sqlite3")
    with db:
        db.executemany(audit_index.INSERT, [row for r in records for row in audit_index.rows_of(r)])
    return db


def answers(db):
    since = T0 - timedelta(days=1)
    report = audit_index.agreement_report(db, "DSA-010", since)
    return (
        [audit_index.who_received(db, subject) for subject in ("alice", "bob", "carol")],
        (report.allowed, report.denied, report.fields, report.reasons, report.people),
        db.execute("SELECT COUNT(*) FROM decisions").fetchone(),
    )


def test_the_index_answers_the_same_from_per_recipient_records_case_records_and_both(tmp_path):
    older = [{k: v for k, v in d.items() if k != "outcome"} for d in DECISIONS]
    by_case = [(d["subject_key"] + d["source_event_id"], d) for d in DECISIONS]
    folded = [avro_round_trip(r) for _, r in case_records(by_case)]
    assert len(folded) < len(older)
    mixed = older[:2] + [avro_round_trip(r) for _, r in case_records(by_case[2:])]
    expected = answers(index_of(tmp_path, "older", older))
    assert answers(index_of(tmp_path, "folded", folded)) == expected
    assert answers(index_of(tmp_path, "mixed", mixed)) == expected
    receipts, denied = expected[0][0]
    assert [r.recipient for r in receipts] == ["city-of-edinburgh"] and receipts[0].times == 2
    assert denied == {"community-food-network": 1, "": 1}


# --- the gate: one record per case decided ---------------------------------------------


def test_the_gate_writes_one_audit_record_per_case_naming_every_recipient_before_any_share():
    from accord.pipeline import cases

    state = cases.apply_event(
        cases.new_state(KEY),
        {
            "kind": "entry",
            "event_id": EVENT,
            "occurred_at": "2020-06-01T00:00:00.000+00:00",
            "source_org": "nhs-lothian",
            "match_method": "chi",
            "data": {"given_name": "Ann", "shielding_status": "SHIELDING"},
        },
    )
    view = cases.build_case(state, cases.load_priority_rules())
    suspended = dict(
        GOOD,
        recipient="community-food-network",
        agreement_id="DSA-015",
        allow=False,
        fields_released=[],
        reasons=["denied: agreement DSA-015 is suspended"],
    )
    unnamed = dict(GOOD, recipient="", agreement_id="", allow=False, fields_released=[])
    sent = []

    def done():
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def send(topic, key, value, headers):
        sent.append(("share", topic, dict(headers)["accord-decision-id"].decode()))
        return done()

    async def set_released(key, holders):
        return done()

    async def audit(records):
        sent.extend(("audit", key, record) for key, record in records)

    gate = Gate(
        Settings(opa_retry_s=0.0),
        FakeSerde(),
        FakePolicy([[GOOD, suspended, unnamed]]),
        send,
        released=lambda key: ["community-food-network"],  # held from before the suspension
        set_released=set_released,
        audit=audit,
    )
    counts = asyncio.run(gate.process([view, view]))
    assert counts["allowed"] == 1 and counts["withdrawn"] == 1
    audits = [entry for entry in sent if entry[0] == "audit"]
    assert len(audits) == 1 and audits[0][1] == KEY.encode()
    record = audits[0][2]
    assert [(i["recipient"], i["outcome"]) for i in record["recipients"]] == [
        ("city-of-edinburgh", ALLOW),
        ("community-food-network", WITHDRAW),
        ("community-food-network", DENY),
        (None, DENY),
    ]
    assert record["subject_key"] == KEY and record["policy_revision"] == "r1"
    # Audit first, and every share and tombstone names a decision the record holds.
    assert sent[0][0] == "audit"
    shares = [entry for entry in sent if entry[0] == "share"]
    assert {topic for _, topic, _ in shares} == {
        "share.city-of-edinburgh.support-list",
        "share.community-food-network.support-list",
    }
    audited = {d["decision_id"] for d in recipient_decisions(record)}
    assert all(decision_id in audited for _, _, decision_id in shares)
    avro_round_trip(record)  # and it encodes
