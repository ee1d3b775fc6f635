"""The review queue as functions: what `accord match review` and a console page call.

The matcher sends a pair it cannot decide to `hub.match.review` (compacted, keyed by the
queued person's key; `pipeline.identity`), with both people's identifying fields and the
evidence. A reviewer (the `accord-reviewer` principal: who holds its credential may
review) reads the queue, and publishes each decision as a MatchReviewDecision on
`hub.match.decisions`, which the worker applies: a confirmed pair is merged, a rejected
one recorded as two people, a split undoes a merge (`pipeline.stages.route_reviews`).
The decisions topic is kept like the audit: it is the record of every review (who, when,
what, why), and holds no personal data; what a decision changes on the lists is audited
by the gate as any change is, its reasons naming the decision.

Reading is separate from deciding: `pending`, `find`, `side_by_side`, `decision` and
`merges` are pure or read-only; `publish` is the one write. Kafka being away is an
InfrastructureError (nothing read, nothing published), never a crash of the caller.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka.errors import KafkaError

from accord.core.credentials import REVIEWER
from accord.core.errors import AccordError, InfrastructureError
from accord.core.kafka import acknowledged_producer, as_principal, connection, read_topic
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import MATCH_DECISIONS, MATCH_REVIEW, Topics
from accord.matching.actions import CONFIRM, REJECT, SPLIT

MIN_ID_LENGTH = 6
REASON_MAX = 300
# What a reason must not hold: it is kept in the audit for as long as the audit is.
_PERSONAL = (
    (re.compile(r"\d[\d\s-]{5,}\d"), "a number (a CHI, NHS or phone number?)"),
    (re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", re.IGNORECASE), "a postcode"),
    (re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+"), "an email address"),
    (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"), "a date"),
)
# The matcher's evidence about each field (postcode and address are one "location").
EVIDENCE_OF = {
    "given_name": "given_name",
    "family_name": "family_name",
    "date_of_birth": "date_of_birth",
    "postcode": "location",
    "address_line1": "location",
}
FIELD_LABELS = {
    "given_name": "given name",
    "family_name": "family name",
    "date_of_birth": "date of birth",
    "postcode": "postcode",
    "address_line1": "address",
}


class ReviewError(AccordError):
    """A review command cannot do what was asked (no such review, an ambiguous id, a
    reason that holds personal data); the message says what to do instead."""


@dataclass(frozen=True)
class Review:
    """One queued pair: the queued (provisional) person and the listed candidate."""

    review_id: str  # the queued person's key (the record's key on hub.match.review)
    candidate_key: str
    block_key: str | None
    dataset: str
    source_org: str
    probability: float
    weight: float
    evidence: tuple[tuple[str, str, float], ...]
    queued_at: str | None
    records: dict[str, dict[str, Any]]

    @property
    def short_id(self) -> str:
        return self.review_id[:12]

    @classmethod
    def from_item(cls, key: str, item: dict[str, Any]) -> Review:
        return cls(
            review_id=item.get("provisional_key") or key,
            candidate_key=item["candidate_key"],
            block_key=item.get("block_key"),
            dataset=item.get("dataset") or "",
            source_org=item.get("source_org") or "",
            probability=float(item.get("probability") or 0.0),
            weight=float(item.get("weight") or 0.0),
            evidence=tuple((str(e[0]), str(e[1]), float(e[2])) for e in item.get("evidence") or ()),
            queued_at=item.get("queued_at"),
            records=item.get("records") or {},
        )


@contextmanager
def _kafka(doing: str) -> Iterator[None]:
    """Kafka's own errors (no broker, a send not acknowledged) as an InfrastructureError
    naming what was being done: the callers (a command, a console page) report it as the
    hub being unavailable and change nothing."""
    try:
        yield
    except KafkaError as exc:
        raise InfrastructureError(f"Kafka unavailable while {doing}: {type(exc).__name__}") from exc


def reviewer_settings(settings: Settings) -> Settings:
    """Settings that sign in as the reviewer, unless the environment chose a principal."""
    return as_principal(settings, REVIEWER)


def latest(messages: Iterable[Any]) -> dict[str, bytes | None]:
    """The latest value per key of a compacted topic's messages (None: removed)."""
    found: dict[str, bytes | None] = {}
    for message in messages:
        found[message.key.decode()] = message.value
    return found


def queue_from(values: dict[str, bytes | None]) -> list[Review]:
    """The pending reviews among the latest values, oldest first."""
    reviews = [Review.from_item(key, orjson.loads(value)) for key, value in values.items() if value]
    return sorted(reviews, key=lambda r: (r.queued_at or "", r.review_id))


def pending(settings: Settings) -> list[Review]:
    """Every pair waiting for a reviewer, read from hub.match.review."""
    topic = Topics(settings).internal(MATCH_REVIEW)
    with _kafka(f"reading {topic}"):
        return queue_from(latest(read_topic(settings, topic, idle_timeout_s=1.0)))


def find(reviews: list[Review], wanted: str) -> Review:
    """The review whose id is `wanted` or starts with it (at least MIN_ID_LENGTH
    characters, as `list` shows them)."""
    wanted = wanted.strip().lower()
    if len(wanted) < MIN_ID_LENGTH:
        raise ReviewError(f"give at least {MIN_ID_LENGTH} characters of the review id")
    found = [r for r in reviews if r.review_id.startswith(wanted)]
    if not found:
        raise ReviewError(
            f"no pending review {wanted}: it may have been decided already "
            "(`accord match review list` shows what is waiting)"
        )
    if len(found) > 1:
        raise ReviewError(f"{wanted} is the start of {len(found)} review ids: give more of it")
    return found[0]


def check_reason(reason: str | None, required: bool) -> str | None:
    """The reason as it will be kept, or ReviewError when it is missing (and required),
    too long, or holds what looks like personal data (the audit keeps it)."""
    text = " ".join((reason or "").split())
    if not text:
        if required:
            raise ReviewError("say why with --reason (kept in the audit; no personal data)")
        return None
    if len(text) > REASON_MAX:
        raise ReviewError(f"the reason is {len(text)} characters; keep it to {REASON_MAX}")
    for pattern, what in _PERSONAL:
        if pattern.search(text):
            raise ReviewError(
                f"the reason seems to hold {what}: it is kept in the audit, which holds no "
                "personal data; say why in words (e.g. 'different middle names, same "
                "address: likely twins')"
            )
    return text


def side_by_side(review: Review) -> list[tuple[str, str, str, str]]:
    """(field, queued record, listed person, evidence) rows: only the fields the matcher
    compares, its evidence about each (level and log2 Bayes factor), then the evidence
    that belongs to no one field (name order, the guards that limited the outcome)."""
    queued = review.records.get("queued") or {}
    candidate = review.records.get("candidate") or {}
    evidence: dict[str, list[str]] = {}
    for name, level, weight in review.evidence:
        evidence.setdefault(name, []).append(f"{level} ({weight:+.1f})" if weight else level)
    rows = [
        (
            label,
            str(queued.get(name) or "-"),
            str(candidate.get(name) or "-"),
            ", ".join(evidence.get(EVIDENCE_OF[name], ())) if name != "address_line1" else "",
        )
        for name, label in FIELD_LABELS.items()
    ]
    for key in sorted(set(evidence) - set(EVIDENCE_OF.values())):
        rows.append((key.replace("_", " "), "", "", ", ".join(evidence[key])))
    return rows


def decision(
    action: str,
    person_key: str,
    other_person_key: str,
    reviewer: str,
    *,
    review: Review | None = None,
    reason: str | None = None,
    reviewer_ref: str | None = None,
    now: datetime | None = None,
    decision_id: str | None = None,
) -> dict[str, Any]:
    """A MatchReviewDecision (pure: `now` and `decision_id` may be given)."""
    if action not in (CONFIRM, REJECT, SPLIT):
        raise ReviewError(f"unknown review action {action!r}")
    if person_key == other_person_key:
        raise ReviewError("a person cannot be confirmed, rejected or split against themselves")
    reason = check_reason(reason, required=action in (REJECT, SPLIT))
    return {
        "decision_id": decision_id or str(uuid.uuid4()),
        "decided_at": now or datetime.now(UTC),
        "schema_version": 1,
        "action": action,
        "review_id": review.review_id if review else None,
        "person_key": person_key,
        "other_person_key": other_person_key,
        "block_key": review.block_key if review else None,
        "probability": review.probability if review else None,
        "reviewer": reviewer,
        "reviewer_ref": (reviewer_ref or "").strip() or None,
        "reason": reason,
    }


def publish(settings: Settings, record: dict[str, Any]) -> None:
    """Publish a decision on hub.match.decisions (keyed by the first person), acknowledged."""
    topic = Topics(settings).internal(MATCH_DECISIONS)
    conn = connection(settings)
    serde = AvroSerde(registry_client(settings, conn.principal), settings.schemas_dir)
    value = serde.encode(Topics.subject(topic), "MatchReviewDecision", record)
    with _kafka(f"publishing to {topic}"):
        producer = acknowledged_producer(conn)
        try:
            producer.send(topic, key=record["person_key"].encode(), value=value).get(timeout=30)
        finally:
            producer.close()


def decide(
    settings: Settings,
    action: str,
    review_id: str,
    reason: str | None = None,
    reviewer_ref: str | None = None,
) -> dict[str, Any]:
    """Confirm or reject a pending review: the decision published, and returned."""
    review = find(pending(settings), review_id)
    if not review.block_key:
        raise ReviewError(
            f"review {review.short_id} was queued before reviews named their matching block, "
            "so the hub cannot apply a decision about it; it stays a case of its own"
        )
    record = decision(
        action,
        review.review_id,
        review.candidate_key,
        connection(settings).principal,
        review=review,
        reason=reason,
        reviewer_ref=reviewer_ref,
    )
    publish(settings, record)
    return record


def decisions(settings: Settings) -> list[dict[str, Any]]:
    """Every review decision published so far, oldest first."""
    topic = Topics(settings).internal(MATCH_DECISIONS)
    conn = connection(settings)
    serde = AvroSerde(registry_client(settings, conn.principal), settings.schemas_dir)
    subject = Topics.subject(topic)
    with _kafka(f"reading {topic}"):
        found = [
            serde.decode_as(m.value, subject, "MatchReviewDecision")[1]
            for m in read_topic(settings, topic, idle_timeout_s=1.0)
            if m.value
        ]
    return [{**d, "decision_id": str(d["decision_id"])} for d in found]


def _pair(d: dict[str, Any]) -> frozenset[str]:
    return frozenset((d["person_key"], d["other_person_key"]))


def undone_by(past: list[dict[str, Any]], confirmation: dict[str, Any]) -> dict[str, Any] | None:
    """The SPLIT decision that undid `confirmation` (a CONFIRM among `past`): the first
    split of the same two people decided at or after it (when either time is not known,
    any split of them), or None while the merge stands."""
    when = confirmation.get("decided_at")
    for d in past:
        if d["action"] != SPLIT or _pair(d) != _pair(confirmation):
            continue
        if when is None or d.get("decided_at") is None or d["decided_at"] >= when:
            return d
    return None


def merges(past: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The merges confirmed in review that no split has undone, newest first: what a
    reviewer may split by its decision id. (A merge the matcher made on its own, sure
    enough without a reviewer, is not among the review decisions: it is split by the two
    people's case keys.)"""
    standing = [d for d in past if d["action"] == CONFIRM and undone_by(past, d) is None]
    return sorted(standing, key=lambda d: str(d.get("decided_at") or ""), reverse=True)


_KEY = re.compile(r"^[0-9a-f]{64}$")


def split_pair(
    past: list[dict[str, Any]], first: str | None, second: str | None, decision_id: str | None
) -> tuple[str, str]:
    """The two person keys to split: given, or those of a past CONFIRM decision (by its
    id or the start of it)."""
    if decision_id:
        wanted = decision_id.strip().lower()
        if len(wanted) < MIN_ID_LENGTH:
            raise ReviewError(f"give at least {MIN_ID_LENGTH} characters of the decision id")
        found = [
            d for d in past if d["action"] == CONFIRM and str(d["decision_id"]).startswith(wanted)
        ]
        if len(found) == 1 and (undone := undone_by(past, found[0])) is not None:
            raise ReviewError(
                f"confirmation {wanted} was undone already, by split {undone['decision_id']}"
            )
        if len(found) != 1:
            raise ReviewError(
                f"no confirmation {wanted} among the review decisions"
                if not found
                else f"{wanted} is the start of {len(found)} decision ids: give more of it"
            )
        return found[0]["person_key"], found[0]["other_person_key"]
    keys = [(k or "").strip().lower() for k in (first, second)]
    if not all(_KEY.match(k) for k in keys):
        raise ReviewError(
            "give the two people's case keys (64 hex characters, as the lists and the audit "
            "show them), or --decision ID of the confirmation to undo"
        )
    return keys[0], keys[1]


def split(
    settings: Settings,
    first: str | None,
    second: str | None,
    reason: str,
    decision_id: str | None = None,
    reviewer_ref: str | None = None,
) -> dict[str, Any]:
    """Undo a merge of two people: the decision published, and returned."""
    check_reason(reason, required=True)  # before reading anything
    past = decisions(settings) if decision_id else []
    one, other = split_pair(past, first, second, decision_id)
    record = decision(
        SPLIT,
        one,
        other,
        connection(settings).principal,
        reason=reason,
        reviewer_ref=reviewer_ref,
    )
    publish(settings, record)
    return record
