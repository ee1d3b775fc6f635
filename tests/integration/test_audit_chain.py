"""The audit on the real stack: written before any share, chained per partition through a
kill -9, and `accord audit verify` finding tampering (real Kafka, OPA, worker).

- A real worker's audit, with the worker killed (SIGKILL) mid-stream and restarted,
  verifies intact; copies with a record deleted, altered or inserted do not, and neither
  does the real audit once the administrator appends a forged record.
- The unaudited-share probe: with the worker's WRITE on the audit removed mid-run, no share
  reaches any list (read committed) while cases are being decided; once it is back, every
  share has its audit record and the chain is intact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from accord.access import acls, provision
from accord.core.credentials import AUDIT, WORKER
from accord.core.kafka import acknowledged_producer, confluent_admin, ensure_topics, read_topic
from accord.core.scotland import org_id
from accord.core.topics import Topics
from accord.governance.verify import verify
from accord.stack import processes
from accord.synthetic.records import LOTHIAN

from .conftest import audit_decisions, decoded
from .workload import publish_workload

pytestmark = pytest.mark.integration
PEOPLE = 160


def as_audit(settings):
    return settings.model_copy(update={"principal": AUDIT, "secret": None, "secret_file": None})


def audit_cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`accord audit verify` as an officer runs it: signed in as the audit principal."""
    env = {**processes.worker_env(settings), "ACCORD_LOG_FORMAT": "console"}
    return subprocess.run(
        [sys.executable, "-m", "accord", "audit", "verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def by_partition(settings, topic):
    records = defaultdict(list)
    for message in read_topic(settings, topic, idle_timeout_s=1.0):
        records[message.partition].append(message)
    return records


def copy_topic(settings, name, partitions, records) -> None:
    """A copy of the audit, record by record in order, into partitions like the original."""
    ensure_topics(settings, {name: None}, partitions)
    producer = acknowledged_producer(settings, max_in_flight_requests_per_connection=1)
    for partition, messages in records.items():
        for key, value in messages:
            producer.send(name, key=key, value=value, partition=partition)
    producer.flush()
    producer.close()


def wait_for_shares(settings, serde, minimum, timeout_s=90.0):
    share = Topics(settings).share(org_id("City of Edinburgh"))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(decoded(settings, serde, share)) >= minimum:
            return
        time.sleep(0.5)
    raise AssertionError("no shares before the fault")


def test_the_chain_survives_kill_9_and_verify_finds_deletion_alteration_insertion_forgery(
    settings, serde, worker, tmp_path
):
    topics = Topics(settings)
    publish_workload(settings, serde, tmp_path, PEOPLE)
    first = worker()
    wait_for_shares(settings, serde, 3)
    os.kill(first.pid, signal.SIGKILL)  # mid-stream: transactions may be open
    first.wait()
    worker()
    processes.wait_until_caught_up(settings)

    result = verify(as_audit(settings), serde, topics.audit)
    audit = by_partition(settings, topics.audit)
    assert result.intact, [p.first_break for p in result.partitions]
    assert result.checked == sum(len(v) for v in audit.values()) > PEOPLE
    assert all(p.unchained == 0 for p in result.partitions)
    cli = audit_cli(settings)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "intact" in cli.stdout and f"{result.checked} records" in cli.stdout

    # Tampered copies (as the administrator, who alone may make topics).
    partition = max(audit, key=lambda p: len(audit[p]))
    original = {p: [(m.key, m.value) for m in audit[p]] for p in audit}
    middle = len(original[partition]) // 2
    assert middle >= 2
    key, value = original[partition][middle]
    _, record = serde.decode(value)
    record["allow"] = not record["allow"]
    altered_value = serde.encode(Topics.subject(topics.audit), "DecisionRecord", record)
    tampered = {
        "deleted": original[partition][:middle] + original[partition][middle + 1 :],
        "altered": [
            *original[partition][:middle],
            (key, altered_value),
            *original[partition][middle + 1 :],
        ],
        "inserted": [
            *original[partition][:middle],
            original[partition][1],
            *original[partition][middle:],
        ],
    }
    expected = {"deleted": "broken", "altered": "broken", "inserted": "fork"}
    count = len(audit)
    for kind, records in tampered.items():
        name = f"{settings.topic_prefix}copy.{kind}"
        copy_topic(settings, name, max(count, settings.topic_partitions), {partition: records})
        report = verify(settings, serde, name)
        broken = [p for p in report.partitions if not p.intact]
        assert [p.partition for p in broken] == [partition], kind
        first = broken[0].first_break
        at = middle + 1 if kind == "altered" else middle
        assert (first.offset, first.kind) == (at, expected[kind]), (kind, first)
        assert broken[0].checked == len(records)

    # A forged record appended to the real audit by the administrator.
    producer = acknowledged_producer(settings)
    producer.send(topics.audit, key=key, value=altered_value, partition=partition).get(30)
    producer.close()
    cli = audit_cli(settings)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert f"partition {partition:>3}" in cli.stdout and "BROKEN" in cli.stdout
    assert "cannot" not in cli.stdout


def test_verify_exits_2_when_the_audit_cannot_be_read(settings):
    cli = audit_cli(settings, "--topic", f"{settings.topic_prefix}hub.no-such-audit")
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert "cannot verify" in cli.stderr


def test_no_share_leaves_while_the_audit_cannot_be_written(settings, serde, worker, tmp_path):
    """The unaudited-share probe: the audit's WRITE grant is removed as the administrator;
    the worker decides cases (hub.cases fills) but shares nothing until it is back."""
    topics = Topics(settings)
    admin = confluent_admin(provision.admin_connection(settings))
    grant = acls.Grant(WORKER, acls.TOPIC, topics.audit, acls.LITERAL, acls.WRITE)
    provision.remove_grants(admin, [grant])
    lists = [topics.share(org_id(council)) for council in LOTHIAN]
    try:
        publish_workload(settings, serde, tmp_path, PEOPLE)
        worker()
        deadline = time.monotonic() + 120
        cases = topics.internal("cases")  # the worker's JSON record of each case
        while len(list(read_topic(settings, cases, idle_timeout_s=0.5))) < PEOPLE // 4:
            assert time.monotonic() < deadline, "the worker decided no cases"
            time.sleep(1)
        time.sleep(5)  # a few more batches, each refused its audit
        for name in lists:
            assert decoded(settings, serde, name) == [], f"{name} got a share without audit"
        assert decoded(settings, serde, topics.audit) == []
    finally:
        provision.add_grants(admin, [grant])
    processes.wait_until_caught_up(settings)
    audited = {str(d["decision_id"]) for d in audit_decisions(settings, serde)}
    shared = 0
    for name in lists:
        for message in read_topic(settings, name, idle_timeout_s=1.0):
            decision = dict(message.headers)["accord-decision-id"].decode()
            assert decision in audited, f"{name}: a share without its audit record"
            shared += 1
    assert shared >= PEOPLE // 4
    assert verify(as_audit(settings), serde, topics.audit).intact
