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
    reason: str = ""  # the first reason of the deny behind a flip

    def add(self, subject_key: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES and subject_key not in self.examples:
            self.examples.append(subject_key)


@dataclass(frozen=True)
class Side:
    """One person's decision for one recipient, as shown by `--chi` (no field values)."""

    allow: bool
    agreement_id: str
    fields: tuple[str, ...]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "allow": self.allow,
            "agreement_id": self.agreement_id,
            "fields_released": list(self.fields),
            "reason": self.reason,
        }


def _side(decision: dict[str, Any]) -> Side:
    allow = bool(decision.get("allow"))
    reasons = decision.get("reasons") or [""]
    return Side(
        allow,
        decision.get("agreement_id") or "",
        tuple(sorted(decision.get("fields_released") or ())) if allow else (),
        str(reasons[0]) if decision else "no agreement names this recipient",
    )


@dataclass
class Simulation:
    records: int = 0
    skipped: int = 0
    decisions: int = 0
    unchanged: int = 0
    # (recipient, flip, agreement, clause): the agreement and clause of the deny that
    # causes the flip (the candidate's for allow→deny, the current one's for deny→allow).
    flips: dict[tuple[str, str, str, str], Change] = field(
        default_factory=lambda: defaultdict(Change)
    )
    fields: dict[tuple[str, str, str], Change] = field(
        default_factory=lambda: defaultdict(Change)
    )  # (recipient, field, "newly shared" | "newly withheld")
    # (recipient, agreement): records the recipient holds now (its latest audited decision
    # about the person is a share) that the candidate would deny, so withdraw.
    retracted: dict[tuple[str, str], Change] = field(default_factory=lambda: defaultdict(Change))
    held_known: bool = False  # whether the audit index said who holds what
    person: str | None = None  # the pseudonymous key asked about with --chi
    person_found: bool = False
    person_decisions: dict[str, tuple[Side, Side]] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "records": self.records,
            "skipped": self.skipped,
            "decisions": self.decisions,
            "unchanged": self.unchanged,
            "flips": [
                {
                    "recipient": r,
                    "flip": f,
                    "agreement_id": a,
                    "clause": c,
                    "reason": ch.reason,
                    "count": ch.count,
                    "examples": ch.examples,
                }
                for (r, f, a, c), ch in sorted(self.flips.items())
            ],
            "fields": [
                {"recipient": r, "field": n, "change": k, "count": c.count, "examples": c.examples}
                for (r, n, k), c in sorted(self.fields.items())
            ],
            "retracted": None
            if not self.held_known
            else [
                {"recipient": r, "agreement_id": a, "count": c.count, "examples": c.examples}
                for (r, a), c in sorted(self.retracted.items())
            ],
        }
        if self.person is not None:
            out["person"] = {
                "subject_key": self.person,
                "found": self.person_found,
                "recipients": [
                    {"recipient": r, "current": before.as_dict(), "candidate": after.as_dict()}
                    for r, (before, after) in sorted(self.person_decisions.items())
                ],
            }
        return out


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
                "group.id": f"{settings.worker_group}-simulate",
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


def compare(
    sim: Simulation,
    items: list[dict],
    current: list[dict],
    candidate: list[dict],
    held: set[tuple[str, str]] | None = None,
) -> None:
    """Count what differs between the current and the candidate decisions of `items`.
    `held`: (subject key, recipient) pairs the recipient holds now."""
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
        if sim.person is not None and subject == sim.person:
            sim.person_found = True
            sim.person_decisions[recipient] = (_side(old), _side(new))
        if held is not None and (subject, recipient) in held and not new_allow:
            sim.retracted[
                (recipient, new.get("agreement_id") or old.get("agreement_id") or "")
            ].add(subject)
        if old_allow == new_allow and old_fields == new_fields:
            sim.unchanged += 1
            continue
        if old_allow != new_allow:
            cause = old if new_allow else new
            flip = "deny→allow" if new_allow else "allow→deny"
            agreement = cause.get("agreement_id") or (new or old).get("agreement_id") or ""
            change = sim.flips[(recipient, flip, agreement, cause.get("clause") or "")]
            if not change.reason:
                change.reason = _side(cause).reason
            change.add(subject)
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
    *,
    held: set[tuple[str, str]] | None = None,
    person: str | None = None,
) -> Simulation:
    """Replay retained partner input through the current and the candidate policies.
    `held`: who holds what now (from the audit index), to count the records the candidate
    would withdraw; `person`: one pseudonymous key whose decisions are kept, before and
    after."""
    started = time.monotonic()
    sim = Simulation(held_known=held is not None, person=person)
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
                compare(sim, items, current, proposed, held)
    sim.seconds = time.monotonic() - started
    log.info(
        "simulation_done",
        records=sim.records,
        decisions=sim.decisions,
        changed=sim.decisions - sim.unchanged,
        seconds=round(sim.seconds, 2),
    )
    return sim
