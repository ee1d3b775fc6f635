"""The audit index against the real Kafka: decisions on the audit topic are indexed once,
resumed from stored offsets, and answered by the CLI without printing identifiers."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accord.core.credentials import credentials_dir
from accord.core.kafka import acknowledged_producer, ensure_topics
from accord.core.pseudonym import person_key
from accord.core.topics import Topics
from accord.governance import audit_index
from accord.stack import processes

from .workload import people

pytestmark = pytest.mark.integration
T0 = datetime.now(UTC) - timedelta(hours=1)


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
    chi = people(1)[0]["chi_number"]
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
    chi = people(1)[0]["chi_number"]
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
