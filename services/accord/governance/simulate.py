"""Replay before release: run retained partner input through the current policies (the
running OPA) and a candidate policies dir (an isolated OPA), and report what would change.

The policy input is built the way the worker builds it (its intake checks and person
keys, its case views, `policy_input_record`, its purpose), with one fixed `now` for both
sides so only the policies differ. A simulation never produces to Kafka: it has a
consumer and no producer.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from accord.core.errors import InfrastructureError
from accord.core.kafka import admin_client, confluent_config
from accord.core.logging import get_logger
from accord.core.policy import opa_session
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import DATASET_RECORDS, SUPPORT_REQUEST, Topics
from accord.governance.opa import IsolatedOpa, decide
from accord.pipeline import cases as case_rules
from accord.pipeline.decision import policy_input_record
from accord.pipeline.intake import Incoming, Intake, Rejected

log = get_logger("accord.governance.simulate")
BATCH = 500
EXAMPLES = 3


@dataclass
class Change:
    """One kind of change for one recipient (and field), with a few example keys."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, subject_key: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES and subject_key not in self.examples:
            self.examples.append(subject_key)


@dataclass
class Simulation:
    records: int = 0
    skipped: int = 0
    decisions: int = 0
    unchanged: int = 0
    flips: dict[tuple[str, str], Change] = field(default_factory=lambda: defaultdict(Change))
    fields: dict[tuple[str, str, str], Change] = field(
        default_factory=lambda: defaultdict(Change)
    )  # (recipient, field, "newly shared" | "newly withheld")
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "skipped": self.skipped,
            "decisions": self.decisions,
            "unchanged": self.unchanged,
            "flips": [
                {"recipient": r, "flip": f, "count": c.count, "examples": c.examples}
                for (r, f), c in sorted(self.flips.items())
            ],
            "fields": [
                {"recipient": r, "field": n, "change": k, "count": c.count, "examples": c.examples}
                for (r, n, k), c in sorted(self.fields.items())
            ],
        }


def partner_topics(settings: Settings) -> list[str]:
    topics = Topics(settings)
    admin = admin_client(settings)
    try:
        names = admin.list_topics()
    finally:
        admin.close()
    out = []
    for name in names:
        try:
            _, dataset = topics.parse_partner(name)
        except ValueError:
            continue
        if dataset in DATASET_RECORDS and name.startswith(topics.prefix + "partner."):
            out.append(name)
    return sorted(out)


@dataclass(frozen=True)
class Retained:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def retained(settings: Settings, topics: list[str], since: datetime | None) -> Iterator[Retained]:
    """Every retained message of `topics` (from `since`, if given) up to their current end,
    in offset order per partition. librdkafka reads every codec partners may use."""
    consumer = Consumer(
        confluent_config(
            settings,
            **{
                # never committed: offsets are not ours to move
                "group.id": f"{settings.worker_id}-simulate",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            },
        )
    )
    try:
        metadata = consumer.list_topics(timeout=10).topics
        tps = [TopicPartition(t, p) for t in topics for p in sorted(metadata[t].partitions)]
        if not tps:
            return
        end = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10) for tp in tps
        }
        start = {key: low for key, (low, _) in end.items()}
        if since is not None:
            millis = int(since.timestamp() * 1000)
            for tp in consumer.offsets_for_times(
                [TopicPartition(t.topic, t.partition, millis) for t in tps], timeout=10
            ):
                high = end[(tp.topic, tp.partition)][1]
                start[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else high
        remaining = {key for key, (_, high) in end.items() if start[key] < high}
        consumer.assign([TopicPartition(t, p, start[(t, p)]) for t, p in remaining])
        while remaining:
            for message in consumer.consume(num_messages=5000, timeout=1.0):
                if message.error():
                    raise InfrastructureError(f"reading {message.topic()}: {message.error()}")
                key = (message.topic(), message.partition())
                if key not in remaining:
                    continue
                yield Retained(*key, message.offset(), message.key(), message.value())
                if message.offset() + 1 >= end[key][1]:
                    remaining.discard(key)
    except KafkaException as exc:
        raise InfrastructureError(f"reading partner topics: {exc}") from exc
    finally:
        consumer.close()


def replayed_cases(
    settings: Settings, serde: AvroSerde, messages: Iterator[Any]
) -> tuple[list[dict[str, Any]], int, int]:
    """(open case views, records read, records not replayed), built with the worker's own
    stages: `Intake.check` (decoding, publisher check, CHI validation, person keys), then
    `apply_event` and `build_case` per person, in topic order.

    Events that carry no identifier the hub can key on need the worker's probabilistic
    identity matching, which depends on its tables; they are counted, not replayed.
    Closed cases get no decision (the worker withdraws them), so they are left out.
    """
    intake = Intake(serde, Topics(settings), settings.require_pseudonym_key())
    states: dict[str, dict[str, Any]] = {}
    read = skipped = 0
    for message in messages:
        read += 1
        incoming = Incoming(
            message.topic, message.partition, message.offset, message.key, message.value
        )
        try:
            envelope = intake.check(incoming)
        except Rejected:
            skipped += 1  # the worker would quarantine it
            continue
        key = envelope.get("person_key")
        if not key:
            skipped += 1
            continue
        states[key] = case_rules.apply_event(states.get(key) or case_rules.new_state(key), envelope)
    rules = case_rules.load_priority_rules()
    views = [case_rules.build_case(state, rules) for state in states.values()]
    return [v for v in views if v is not None and v["status"] == "OPEN"], read, skipped


def compare(sim: Simulation, items: list[dict], current: list[dict], candidate: list[dict]) -> None:
    keys = {item["record_id"]: item["subject_key"] for item in items}

    def index(decisions: list[dict]) -> dict[tuple[str, str], dict]:
        return {(d.get("record_id", ""), d.get("recipient") or ""): d for d in decisions}

    before, after = index(current), index(candidate)
    for pair in sorted(set(before) | set(after)):
        record_id, recipient = pair
        if not recipient:
            continue  # "no agreement" denies name no recipient; nothing to compare
        old, new = before.get(pair, {}), after.get(pair, {})
        old_allow, new_allow = bool(old.get("allow")), bool(new.get("allow"))
        old_fields = set(old.get("fields_released") or ()) if old_allow else set()
        new_fields = set(new.get("fields_released") or ()) if new_allow else set()
        sim.decisions += 1
        subject = keys.get(record_id, "")
        if old_allow == new_allow and old_fields == new_fields:
            sim.unchanged += 1
            continue
        if old_allow != new_allow:
            sim.flips[(recipient, "deny→allow" if new_allow else "allow→deny")].add(subject)
        for name in new_fields - old_fields:
            sim.fields[(recipient, name, "newly shared")].add(subject)
        for name in old_fields - new_fields:
            sim.fields[(recipient, name, "newly withheld")].add(subject)


def simulate(
    settings: Settings,
    serde: AvroSerde,
    candidate_dir: Path,
    since: datetime | None = None,
    log_file: Path | None = None,
) -> Simulation:
    """Replay retained partner input through the current and the candidate policies."""
    started = time.monotonic()
    sim = Simulation()
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    session = opa_session(settings)
    with IsolatedOpa(settings, candidate_dir, log_file=log_file) as candidate:
        messages = retained(settings, partner_topics(settings), since)
        cases, sim.records, sim.skipped = replayed_cases(settings, serde, messages)
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for case in cases:
            # Support requests go to the own-data policy, which no agreement change affects.
            if case["source"]["dataset"] != SUPPORT_REQUEST:
                groups[(case["source"]["org"], case["source"]["dataset"])].append(case)
        for (org, dataset), batch in sorted(groups.items()):
            for start in range(0, len(batch), BATCH):
                items = [policy_input_record(c) for c in batch[start : start + BATCH]]
                policy_input = {
                    "now": now,
                    "source_org": org,
                    "dataset": dataset,
                    "purpose": settings.purpose,
                    "records": items,
                }
                current = decide(session, settings.opa_url, policy_input)
                proposed = decide(session, candidate.url, policy_input)
                compare(sim, items, current, proposed)
    sim.seconds = time.monotonic() - started
    log.info(
        "simulation_done",
        records=sim.records,
        decisions=sim.decisions,
        changed=sim.decisions - sim.unchanged,
        seconds=round(sim.seconds, 2),
    )
    return sim
