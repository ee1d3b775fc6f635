"""Measure the audit index on a large audit topic: generate N synthetic DecisionRecords
into a topic of a throw-away prefix, index them, run both queries, report the timings,
and delete the topic. Subject keys are random hex, not derived from anyone's identifier,
except one known test CHI whose decisions are spread through the stream."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer

from accord.core.errors import InfrastructureError
from accord.core.kafka import confluent_config, delete_topics, ensure_topics
from accord.core.pseudonym import person_key
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.governance import audit_index

AGREEMENTS = [f"DSA-{n:03d}" for n in range(1, 15)]
FIELDS = ["given_name", "family_name", "address_line1", "town", "postcode", "council_area"]
# A made-up identifier for the one "known" synthetic person; only its HMAC is stored.
BENCH_CHI = "0101500001"


@dataclass
class BenchResult:
    records: int
    generate_s: float
    index_s: float
    who_received_s: float
    agreement_s: float
    catch_up_noop_s: float
    receipts: int


def run_bench(
    settings: Settings, serde: AvroSerde, records: int, echo: Callable[[str], None]
) -> BenchResult:
    bench = settings.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}."})
    topic = Topics(bench).audit
    secret = bench.require_pseudonym_key()
    known = person_key(secret, BENCH_CHI)
    db_path = audit_index.index_path(bench)
    ensure_topics(bench, {topic: None}, bench.topic_partitions)
    rng = random.Random(5)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        t0 = time.monotonic()
        producer = Producer(
            confluent_config(
                bench,
                **{
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 50,
                    "queue.buffering.max.messages": 500_000,
                },
            )
        )
        recipients = [f"council-{n:02d}" for n in range(32)]
        for i in range(records):
            is_known = i % 100_000 == 7
            allow = is_known or rng.random() < 0.3
            subject = known if is_known else uuid.UUID(int=rng.getrandbits(128)).hex * 2
            record = {
                "decision_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "decided_at": start + timedelta(seconds=i),
                "source_org": "nhs-bench",
                "dataset": "shielding-list",
                "source_event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "recipient": recipients[i % 32],
                "purpose": "shielding-support",
                "agreement_id": AGREEMENTS[i % 14],
                "agreement_version": 2,
                "allow": allow,
                "fields_released": FIELDS[: 3 + i % 4] if allow else [],
                "obligations": ["pseudonymise:subject_key"] if allow else [],
                "reasons": ["shared"]
                if allow
                else [f"denied: person lives in area {i % 7}: data minimisation, clause 4.1"],
                "clauses": ["2.1"] if allow else ["4.1"],
                "principles": ["lawfulness"] if allow else ["data minimisation"],
                "policy_revision": "bench",
                "subject_key": subject,
            }
            value = serde.encode(Topics.subject(topic), "DecisionRecord", record)
            while True:
                try:
                    producer.produce(topic, key=subject.encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            if i and i % 200_000 == 0:
                echo(f"  generated {i}")
        if producer.flush(60):
            raise InfrastructureError(f"{topic}: not every generated record was acknowledged")
        generate_s = time.monotonic() - t0
        echo(f"generated {records} decision records in {generate_s:.1f} s")

        t0 = time.monotonic()
        audit_index.catch_up(bench, serde, db_path=db_path)
        index_s = time.monotonic() - t0
        echo(f"indexed in {index_s:.1f} s")

        # What the query commands do: catch up (nothing new), then query.
        t0 = time.monotonic()
        audit_index.catch_up(bench, serde, db_path=db_path)
        noop_s = time.monotonic() - t0
        db = audit_index.connect(db_path)
        t0 = time.monotonic()
        receipts, _ = audit_index.who_received(db, person_key(secret, BENCH_CHI))
        who_s = time.monotonic() - t0
        t0 = time.monotonic()
        audit_index.agreement_report(db, "DSA-007", start)
        agreement_s = time.monotonic() - t0
        db.close()
        return BenchResult(records, generate_s, index_s, who_s, agreement_s, noop_s, len(receipts))
    finally:
        delete_topics(bench, bench.topic_prefix)
        for suffix in ("", "-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
