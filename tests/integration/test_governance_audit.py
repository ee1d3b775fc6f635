"""The audit index against the real Kafka: decisions on the audit topic are indexed once,
resumed from stored offsets, and answered by the CLI without printing identifiers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro
import pytest

from accord.core.auditchain import GENESIS, record_hash
from accord.core.auditrecords import case_record
from accord.core.credentials import credentials_dir
from accord.core.kafka import acknowledged_producer, ensure_topics
from accord.core.pseudonym import person_key
from accord.core.serde import encode_body, frame
from accord.core.topics import Topics
from accord.governance import audit_index
from accord.governance.verify import verify
from accord.stack import processes
from accord.synthetic.records import lothian_people

pytestmark = pytest.mark.integration
T0 = datetime.now(UTC) - timedelta(hours=1)
AUDIT_SCHEMA = "schemas/avro/DecisionRecord.avsc"


def decision(subject: str, recipient: str, allow: bool, minutes: int) -> dict:
    return {
        "decision_id": str(uuid.uuid4()),
        "decided_at": T0 + timedelta(minutes=minutes),
        "source_org": "nhs-lothian",
        "dataset": "shielding-list",
        "source_event_id": str(uuid.uuid4()),
        "recipient": recipient,
        "purpose": "shielding-support",
        "agreement_id": "DSA-010",
        "agreement_version": 2,
        "allow": allow,
        "fields_released": ["given_name", "postcode"] if allow else [],
        "obligations": [],
        "reasons": ["shared"] if allow else ["denied: person lives in City of Edinburgh"],
        "policy_revision": "r1",
        "subject_key": subject,
    }


def send(settings, serde, records) -> None:
    topic = Topics(settings).audit
    ensure_topics(settings, {topic: None}, settings.topic_partitions)
    producer = acknowledged_producer(settings)
    for record in records:
        value = serde.encode(Topics.subject(topic), "DecisionRecord", record)
        producer.send(topic, key=record["subject_key"].encode(), value=value)
    producer.flush()
    producer.close()


def test_index_resumes_and_who_received_prints_organisations_not_identifiers(
    settings, serde, tmp_path
):
    stack_settings = settings  # whose credentials, CA and OPA token the commands use
    # Its own state dir (so its own audit index), signing in with the stack's credentials.
    settings = settings.model_copy(
        update={
            "state_dir": tmp_path / "state",
            "credentials_dir": credentials_dir(stack_settings),
            "ca_file": stack_settings.trusted_ca,
        }
    )
    chi = lothian_people(1)[0]["chi_number"]
    key = person_key(settings.require_pseudonym_key(), chi)
    send(
        settings,
        serde,
        [decision(key, "city-of-edinburgh", True, 0), decision(key, "west-lothian", False, 0)]
        + [decision(uuid.uuid4().hex * 2, "midlothian", True, i) for i in range(50)],
    )
    run = audit_index.catch_up(settings, serde)
    assert run.indexed == 52
    send(settings, serde, [decision(key, "city-of-edinburgh", True, 5)])
    assert audit_index.catch_up(settings, serde).indexed == 1  # resumed, not re-read

    env = {**processes.worker_env(stack_settings), "ACCORD_STATE_DIR": str(settings.state_dir)}
    out = subprocess.run(
        [sys.executable, "-m", "accord", "audit", "who-received"],
        env=env,
        input=f"{chi}\n",  # on stdin, as a pipe gives it: never on the command line
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "city-of-edinburgh" in out.stdout and "DSA-010 v2" in out.stdout
    assert "2x  fields: given_name, postcode" in out.stdout
    assert "withheld from: west-lothian 1x" in out.stdout
    assert chi not in out.stdout + out.stderr

    out = subprocess.run(
        [sys.executable, "-m", "accord", "audit", "agreement", "DSA-010", "--since", "1d"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "midlothian" in out.stdout and "allowed       50" in out.stdout
    assert "denied: person lives in City of Edinburgh" in out.stdout
    assert os.path.exists(audit_index.index_path(settings))


def test_who_received_refuses_an_invalid_chi(settings):
    out = subprocess.run(
        [sys.executable, "-m", "accord", "audit", "who-received"],
        env=processes.worker_env(settings),
        input="1234567890\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "not a valid CHI number" in out.stderr
    assert "1234567890" not in out.stdout + out.stderr


def test_who_received_refuses_a_chi_on_the_command_line(settings):
    chi = lothian_people(1)[0]["chi_number"]
    out = subprocess.run(
        [sys.executable, "-m", "accord", "audit", "who-received", "--chi", chi],
        env=processes.worker_env(settings),
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--chi is not accepted" in out.stderr
    assert chi not in out.stdout + out.stderr


def older_schema_text() -> str:
    """DecisionRecord as it was before case records (no `recipients`): what the records
    already in an audit topic were written with."""
    schema = json.loads((Path(__file__).parents[2] / AUDIT_SCHEMA).read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "recipients"]
    return json.dumps(schema)


def wait_for_leaders(settings, topic, timeout_s=30.0) -> None:
    """Until every partition of a topic just made answers its offsets (a new topic's
    partitions get their leaders a moment after it is made)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from accord.core.kafka import confluent_config

    consumer = Consumer(confluent_config(settings, **{"group.id": f"{topic}-probe"}))
    deadline = time.monotonic() + timeout_s
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for partition in partitions:
            while True:
                try:
                    consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
                    break
                except KafkaException:
                    assert time.monotonic() < deadline, f"{topic} {partition} has no leader"
                    time.sleep(0.5)
    finally:
        consumer.close()


def write_chained(settings, topic, records) -> list[tuple[bytes, bytes]]:
    """(key, encoder) pairs written in order to partition 0, each record naming the hash
    of the one before, as the worker's audit log chains them; returns what was written."""
    written, head = [], GENESIS
    producer = acknowledged_producer(settings, max_in_flight_requests_per_connection=1)
    for key, encode in records:
        value = encode(head)
        head = record_hash(key, value)
        producer.send(topic, key=key, value=value, partition=0)
        written.append((key, value))
    producer.flush()
    producer.close()
    return written


def test_an_audit_of_both_shapes_is_indexed_answered_and_verified(settings, serde, tmp_path):
    """Per-recipient records written under the older schema, then case records, in one
    chained partition: the index holds every recipient decision once, who-received and
    the agreement report answer from both, and verify finds the chain intact (and broken
    after a recipient's outcome inside a case record is altered)."""
    stack_settings = settings
    settings = settings.model_copy(
        update={
            "state_dir": tmp_path / "state",
            "credentials_dir": credentials_dir(stack_settings),
            "ca_file": stack_settings.trusted_ca,
        }
    )
    topic = Topics(settings).audit
    subject = Topics.subject(topic)
    ensure_topics(settings, {topic: None}, settings.topic_partitions)
    wait_for_leaders(settings, topic)
    older_id = serde.registry.register(subject, older_schema_text())
    older = fastavro.parse_schema(json.loads(older_schema_text()))
    chi = lothian_people(1)[0]["chi_number"]
    key = person_key(settings.require_pseudonym_key(), chi)

    def as_older(record):
        return lambda head: frame(older_id, encode_body(older, {**record, "chain_previous": head}))

    def as_case(decisions):
        record = case_record(decisions)
        return lambda head: serde.encode(
            subject, "DecisionRecord", {**record, "chain_previous": head}
        )

    def outcome(record, value):
        return {**record, "outcome": value}

    before = [decision(key, "city-of-edinburgh", True, 0), decision(key, "west-lothian", False, 0)]
    event = str(uuid.uuid4())
    now = [
        outcome(dict(decision(key, r, a, 5), source_event_id=event), o)
        for r, a, o in (
            ("city-of-edinburgh", True, "ALLOW"),
            ("west-lothian", False, "DENY"),
            ("midlothian", True, "ALLOW"),
        )
    ]
    other = [outcome(decision(uuid.uuid4().hex * 2, "midlothian", True, 6), "ALLOW")]
    records = [
        (key.encode(), as_older(before[0])),
        (key.encode(), as_older(before[1])),
        (key.encode(), as_case(now)),
        (other[0]["subject_key"].encode(), as_case(other)),
    ]
    written = write_chained(settings, topic, records)
    assert serde.decode(written[0][1])[0] != serde.decode(written[2][1])[0]  # two schemas

    run = audit_index.catch_up(settings, serde)
    assert (run.records, run.indexed, run.skipped) == (4, 6, 0)
    db = audit_index.connect(audit_index.index_path(settings))
    try:
        receipts, denied = audit_index.who_received(db, key)
        report = audit_index.agreement_report(db, "DSA-010", T0 - timedelta(days=1))
    finally:
        db.close()
    assert [(r.recipient, r.times) for r in receipts] == [
        ("city-of-edinburgh", 2),
        ("midlothian", 1),
    ]
    assert denied == {"west-lothian": 2}
    assert report.allowed == {"city-of-edinburgh": 2, "midlothian": 2}
    assert report.denied == {"west-lothian": 2} and report.people == 2

    env = {**processes.worker_env(stack_settings), "ACCORD_STATE_DIR": str(settings.state_dir)}
    out = subprocess.run(
        [sys.executable, "-m", "accord", "audit", "who-received"],
        env=env,
        input=f"{chi}\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "2x  fields: given_name, postcode" in out.stdout and "midlothian" in out.stdout
    assert "withheld from: west-lothian 2x" in out.stdout

    result = verify(settings, serde, topic)
    assert result.intact and result.checked == 4
    assert sum(p.unchained for p in result.partitions) == 0

    # A recipient's outcome altered inside the case record breaks the next record's link.
    _, case = serde.decode(written[2][1])
    case["recipients"][1]["outcome"] = "ALLOW"
    altered = serde.encode(subject, "DecisionRecord", case)
    copy = f"{settings.topic_prefix}copy.altered"
    ensure_topics(settings, {copy: None}, settings.topic_partitions)
    wait_for_leaders(settings, copy)
    producer = acknowledged_producer(settings, max_in_flight_requests_per_connection=1)
    for index, (k, value) in enumerate(written):
        producer.send(copy, key=k, value=altered if index == 2 else value, partition=0)
    producer.flush()
    producer.close()
    broken = verify(settings, serde, copy)
    assert not broken.intact
    first = broken.partitions[0].first_break
    assert (first.offset, first.kind) == (3, "broken")


def withdrawal(subject: str, recipient: str, agreement: str, minutes: int) -> dict:
    """A gate's per-recipient withdrawal, as a closed case's tombstone is audited."""
    return {
        **decision(subject, recipient, False, minutes),
        "agreement_id": agreement,
        "reasons": ["withdrawn: opted out or withdrew consent"],
        "principles": ["lawfulness"],
        "outcome": "WITHDRAW",
    }


def run_cli(env, *argv, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *argv],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_who_received_shows_retractions_in_json_and_answers_from_the_index_when_kafka_is_down(
    settings, serde, tmp_path
):
    """Shares to the council (DSA-010) and the food partner (DSA-015), then the person
    opts out: one case record withdrawing both, each under its agreement. who-received
    --json shows both shares as withdrawn with time and reason; audit agreement shows the
    withdrawal under each agreement; unknown and mistyped ids are refused with
    suggestions; a draft is named; and with Kafka unreachable who-received answers from
    the local index, saying so."""
    stack_settings = settings
    settings = settings.model_copy(
        update={
            "state_dir": tmp_path / "state",
            "credentials_dir": credentials_dir(stack_settings),
            "ca_file": stack_settings.trusted_ca,
        }
    )
    chi = lothian_people(1)[0]["chi_number"]
    key = person_key(settings.require_pseudonym_key(), chi)
    shares = [
        decision(key, "city-of-edinburgh", True, 0) | {"outcome": "ALLOW"},
        decision(key, "community-food-network", True, 0)
        | {"agreement_id": "DSA-015", "agreement_version": 1, "outcome": "ALLOW"},
    ]
    shares[1]["source_event_id"] = shares[0]["source_event_id"]
    shares[1]["decided_at"] = shares[0]["decided_at"]
    withdrawals = [
        withdrawal(key, "city-of-edinburgh", "DSA-010", 30),
        withdrawal(key, "community-food-network", "DSA-015", 30),
    ]
    withdrawals[1]["source_event_id"] = withdrawals[0]["source_event_id"]
    withdrawals[1]["decided_at"] = withdrawals[0]["decided_at"]
    send(settings, serde, [case_record(shares), case_record(withdrawals)])
    # every partition of the new audit topic answers before the index reads it whole
    wait_for_leaders(settings, Topics(settings).audit)

    env = {**processes.worker_env(stack_settings), "ACCORD_STATE_DIR": str(settings.state_dir)}
    out = run_cli(env, "audit", "who-received", "--json", stdin=f"{chi}\n")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["source"] == "audit index up to date", out.stderr[-2000:]
    assert body["subject_key"] == key
    assert [(r["recipient"], r["agreement_id"], r["holds_now"]) for r in body["received"]] == [
        ("city-of-edinburgh", "DSA-010", False),
        ("community-food-network", "DSA-015", False),
    ]
    withdrawn_at = (T0 + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert sorted(
        (r["recipient"], r["agreement_id"], r["reason"], r["withdrawn_at"][:19])
        for r in body["retracted"]
    ) == [
        (
            "city-of-edinburgh",
            "DSA-010",
            "withdrawn: opted out or withdrew consent",
            withdrawn_at[:19],
        ),
        (
            "community-food-network",
            "DSA-015",
            "withdrawn: opted out or withdrew consent",
            withdrawn_at[:19],
        ),
    ]
    assert body["withheld"] == []  # a withdrawal is not a denial
    assert chi not in out.stdout + out.stderr

    text = run_cli(env, "audit", "who-received", stdin=f"{chi}\n")
    assert "withdrawn (earlier shares retracted):" in text.stdout
    assert "(withdrawn since)" in text.stdout

    out = run_cli(env, "audit", "agreement", "DSA-015", "--since", "1d", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "active" and report["people_withdrawn"] == 1
    [partner] = report["recipients"]
    assert (partner["recipient"], partner["allowed"], partner["withdrawn"]) == (
        "community-food-network",
        1,
        1,
    )

    out = run_cli(env, "audit", "agreement", "DSA-099")
    assert out.returncode == 2 and "no agreement 'DSA-099'" in out.stderr
    assert "did you mean" in out.stderr and "Traceback" not in out.stderr
    out = run_cli(env, "audit", "agreement", "dsa-010")
    assert out.returncode == 2 and "did you mean 'DSA-010'?" in out.stderr
    out = run_cli(env, "audit", "agreement", "DSA-011")
    assert out.returncode == 0, out.stderr
    assert "DSA-011 is a draft: nothing is shared under it" in out.stdout

    from accord.governance.opa import free_port

    down = {**env, "ACCORD_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    out = run_cli(down, "audit", "who-received", "--json", stdin=f"{chi}\n")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["source"].startswith("from the local audit index only")
    assert len(body["retracted"]) == 2
    assert "Traceback" not in out.stderr
