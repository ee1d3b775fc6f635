"""The worker's stages as functions over a batch: records in, records and state out.

    partner.<org>.<dataset>.v1 ──route_checked──► hub.person-events (CHI or NHS number known)
                                               ├─► hub.identity      (by matching block)
                                               └─► hub.request-events (outcomes, by request)
    hub.identity ──match──► hub.person-events (by person) ; hub.match.review
                        └─► hub.request-events (who owns each request)
    hub.request-events ──route_outcomes──► hub.person-events
    hub.person-events ──join──► hub.cases ; the case views the gate decides
    hub.match.decisions ──route_reviews──► hub.identity (confirm, reject: by block)
                                        └─► hub.person-events (split: to both people)

An event whose CHI or NHS number is known carries its person key from intake
(`pipeline.intake`), so it goes straight to the person stage; a copy marked `indexed`
goes to its matching block as well, where the identity stage registers the person and
asks for the merge of provisional people they turn out to be, off the event's path to
the list. Only events without either number wait for the matcher.

Each stage returns `Outputs`: the records to send, by stage topic, the state its table
must hold afterwards (the last value per key) and counts for the log. The worker
(`accord.worker.app`) reads the batch, runs the stage, writes the outputs and
acknowledges the batch once every write is acknowledged. Nothing here touches Kafka.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from accord.core.topics import CASES, IDENTITY, MATCH_REVIEW, PERSON_EVENTS, REQUEST_EVENTS
from accord.matching.actions import CONFIRM, REJECT, SPLIT
from accord.pipeline import cases as case_rules
from accord.pipeline.identity import erase, resolve, settle, settled_reviews
from accord.pipeline.intake import Incoming, Rejected


@dataclass
class Outputs:
    """What a stage produced from one batch.

    records: (stage topic, key, JSON value) to send, in order;
    state: table key -> the value to store (only keys that changed);
    rejects: (message, reason code, reason, field, every problem as {field, rule, message})
    for the publisher's rejects;
    views: case views for the gate (the join stage only);
    refused: (person key, event id, reason code) of events the join must not apply;
    counts: figures for the batch's log line.
    """

    records: list[tuple[str, bytes, dict[str, Any] | None]] = field(default_factory=list)
    state: dict[bytes, Any] = field(default_factory=dict)
    rejects: list[tuple[Incoming, str, str, str | None, tuple[dict[str, Any], ...]]] = field(
        default_factory=list
    )
    views: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def send(self, topic: str, key: str, value: dict[str, Any] | None) -> None:
        self.records.append((topic, key.encode(), value))

    def count(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by


def routed(envelope: dict[str, Any], person: str, out: Outputs) -> None:
    """The person-events message, and for a request the note of who owns it."""
    envelope["person_key"] = person
    out.send(PERSON_EVENTS, person, envelope)
    if envelope["kind"] == "request":
        out.send(
            REQUEST_EVENTS, envelope["request_key"], owner_note(envelope["request_key"], person)
        )


def route_checked(
    checked: list[tuple[Incoming, dict[str, Any]]],
    rejected: list[tuple[Incoming, Rejected]],
    refused: dict[str, Rejected],
    secret: str,
) -> Outputs:
    """Route the checked envelopes of a partner batch and reject the rest.

    `checked` are (message, envelope) that passed intake; `rejected` failed it; `refused`
    are the checked ones whose publisher has no authority to assert them (by location).
    """
    out = Outputs(counts={"records": len(checked) + len(rejected), "quarantined": 0})
    out.counts["unauthorised"] = 0
    for message, exc in rejected:
        out.rejects.append((message, exc.code, exc.reason, exc.field, exc.problems))
        out.count("quarantined")
    for message, envelope in checked:
        if (refusal := refused.get(message.location)) is not None:
            out.rejects.append((message, refusal.code, refusal.reason, refusal.field, ()))
            out.count("quarantined")
            out.count("unauthorised")
            continue
        if envelope["kind"] == "outcome" and envelope.get("case_addressed"):
            # Recorded against a case by its reference: straight to the person (the join
            # stage checks that the publisher holds the case).
            out.send(PERSON_EVENTS, envelope["person_key"], envelope)
        elif envelope["kind"] == "outcome":
            out.send(REQUEST_EVENTS, envelope["request_key"], envelope)
        elif envelope["person_key"]:
            if envelope["block_key"]:
                out.send(IDENTITY, envelope["block_key"], {**envelope, "indexed": True})
            routed(envelope, envelope["person_key"], out)
            out.count("direct")
        elif envelope["block_key"]:
            out.send(IDENTITY, envelope["block_key"], envelope)
        else:
            # No number and no date of birth: nothing to match on, the event stands alone.
            person, _, _, _ = resolve([], envelope, secret)
            routed(envelope, person, out)
    return out


def match(
    events: list[tuple[bytes, dict[str, Any]]],
    block_of: Callable[[bytes], list[dict[str, Any]] | None],
    secret: str,
) -> Outputs:
    """Decide which person each event is about, within its block (`identity.resolve`);
    an `indexed` event (routed at intake) only updates the block and asks for merges;
    an `erase` (an opt-out, see cases.Joined.erasures) drops the person's fields."""
    out = Outputs(counts={"events": len(events), "reviews": 0})
    for key, envelope in events:
        block = out.state[key] if key in out.state else (block_of(key) or [])
        if envelope.get("kind") == "erase":
            people = erase(block, envelope["person_key"])
            erased = {p["person_key"] for p in people if p.get("erased")}
            people, reviews = settled_reviews(people, erased)
            for review_key in reviews:  # their fields leave the review queue too
                out.send(MATCH_REVIEW, review_key, None)
            if people is not block:
                out.state[key] = people
                out.count("erased")
            continue
        if envelope.get("kind") in ("review", "split"):
            settled = settle(block, envelope["decision"])
            if settled.people is not block:
                out.state[key] = settled.people
            if settled.refused:
                out.count("review_refused")
                out.refused.append(
                    (
                        envelope["decision"]["person_key"],
                        envelope["decision"]["decision_id"],
                        settled.refused,
                    )
                )
                continue
            out.count("reviewed")
            if settled.merge is not None:
                provisional, target = settled.merge
                out.send(
                    PERSON_EVENTS,
                    provisional,
                    case_rules.merge_event(
                        provisional,
                        target,
                        {"occurred_at": envelope["decision"]["decided_at"], "source_org": "hub"},
                        review=review_note(envelope["decision"]),
                    ),
                )
            if settled.done and envelope["kind"] == "review":
                out.send(MATCH_REVIEW, envelope["decision"]["person_key"], None)  # settled
            continue
        indexed = envelope.pop("indexed", False)
        person, people, review, merges = resolve(block, envelope, secret)
        if people is not block:
            out.state[key] = people
        if not indexed:
            routed(envelope, person, out)
        for provisional in merges:
            out.count("merged")
            out.send(
                PERSON_EVENTS, provisional, case_rules.merge_event(provisional, person, envelope)
            )
        if review is not None:
            out.count("reviews")
            out.send(MATCH_REVIEW, review["provisional_key"], review)
    return out


NO_SUCH_REQUEST = "no_such_request"


def rejected_partner_record(envelope: dict[str, Any]) -> Incoming:
    """The partner record an envelope came from, for its publisher's rejects: its
    location (`origin`, kept by intake on outcomes) and its checked fields as JSON (the
    original bytes stay on the partner topic)."""
    topic, partition, offset = (envelope.get("origin") or "//").rsplit("/", 2)
    return Incoming(
        topic=topic,
        partition=int(partition) if partition.isdigit() else -1,
        offset=int(offset) if offset.isdigit() else -1,
        key=envelope["event_id"].encode(),
        value=orjson.dumps(envelope.get("data") or {}),
    )


def route_outcomes(
    events: list[tuple[bytes, dict[str, Any]]],
    owner_of: Callable[[bytes], dict[str, Any] | None],
    now: str | None = None,
    hold_s: float | None = None,
) -> Outputs:
    """Send each outcome to the person who owns its request, holding early arrivals until
    the owner note comes (`kind: owner`, from the identity or the join stage).

    The hold is bounded: a held outcome is stamped `held_at` (`now`, the worker's clock),
    and an `expire` message (`pipeline.timers.expired_holds`) gives up those held since
    before its `held_before`: they go to their publisher's rejects as `no_such_request`."""
    out = Outputs(counts={"events": len(events), "held": 0, "expired": 0})
    for key, message in events:
        stored = out.state[key] if key in out.state else owner_of(key)
        state = stored or {"person_key": None, "held": {}}
        state = {"person_key": state["person_key"], "held": dict(state["held"])}
        if message["kind"] == "expire":
            ready = []
            if state["person_key"] is None:
                cutoff = datetime.fromisoformat(message["held_before"])
                for event_id, held in list(state["held"].items()):
                    since = held.get("held_at") or held.get("occurred_at")
                    if since and datetime.fromisoformat(since) < cutoff:
                        del state["held"][event_id]
                        owner = held["data"].get("request_org") or held["source_org"]
                        reason = (
                            f"no request of {owner} with this request id reached the hub "
                            "while the outcome was held: check the request id, or record "
                            "the outcome against the case by its reference"
                        )
                        out.rejects.append(
                            (
                                rejected_partner_record(held),
                                NO_SUCH_REQUEST,
                                reason,
                                "request_id",
                                (),
                            )
                        )
                        out.count("expired")
            if not state["held"] and state["person_key"] is None:
                out.state[key] = None  # nothing left to hold for this key
            else:
                out.state[key] = state
            continue
        if message["kind"] == "owner":
            state["person_key"] = message["person_key"]
            ready, state["held"] = list(state["held"].values()), {}
        elif state["person_key"] is None:
            # The outcome came first: held until its request's owner is known, or given up.
            state["held"][message["event_id"]] = {**message, "held_at": now} if now else message
            out.count("held")
            ready = []
        else:
            ready = [message]
        for outcome in ready:
            outcome.pop("held_at", None)
            outcome["person_key"] = state["person_key"]
            out.send(PERSON_EVENTS, state["person_key"], outcome)
        out.state[key] = state
    return out


def join(
    events: list[tuple[bytes, dict[str, Any]]],
    case_of: Callable[[bytes], dict[str, Any] | None],
    rules: list[dict[str, Any]],
    holders_of: Callable[[bytes], list[str]] | None = None,
) -> Outputs:
    """Fold the batch into the people's cases (`cases.join`): the states to store, the
    events a merge moves, owner notes, the record of each changed case and the views for
    the gate, and erasures for the identity stage; outcomes recorded against a case that
    their publisher does not hold (or no case at all) go to its rejects."""
    joined = case_rules.join(
        [(key.decode(), envelope) for key, envelope in events],
        lambda person: case_of(person.encode()),
        rules,
        (lambda person: holders_of(person.encode())) if holders_of else None,
    )
    out = Outputs(views=joined.views)
    for envelope, code, reason in joined.rejected:
        out.rejects.append((rejected_partner_record(envelope), code, reason, "case_key", ()))
    for person, envelope in joined.person_events:
        out.send(PERSON_EVENTS, person, envelope)
    for request_key, person in joined.owners:
        out.send(REQUEST_EVENTS, request_key, owner_note(request_key, person))
    out.state = {person.encode(): state for person, state in joined.states.items()}
    for view in joined.views:
        out.send(CASES, view["case_key"], view)
    for block, person in joined.erasures:
        out.send(IDENTITY, block, {"kind": "erase", "person_key": person})
    for block, decision in joined.splits:
        out.send(IDENTITY, block, {"kind": "split", "decision": decision})
    out.counts = {
        "events": len(events),
        "forwarded": len(joined.person_events),
        "refused": len(joined.refused),
        "rejected": len(joined.rejected),
    }
    out.refused = joined.refused
    return out


def review_note(decision: dict[str, Any]) -> dict[str, Any]:
    """What a case keeps of the review decision that merged or split it (for the audit's
    reasons): ids, the reviewer's principal and reason, no personal data."""
    return {
        "decision_id": decision["decision_id"],
        "action": decision["action"],
        "reviewer": decision["reviewer"],
        "reason": decision.get("reason"),
    }


def route_reviews(decisions: list[tuple[bytes, dict[str, Any] | None]]) -> Outputs:
    """Send each reviewer's decision (a MatchReviewDecision from hub.match.decisions) to
    the stage that applies it: a confirmation or rejection to the matching block of the
    queued pair (`identity.settle`), a split to both people's cases (`cases.join`), which
    undo the merge and tell the blocks. Decisions of an unknown action are counted."""
    out = Outputs(counts={"decisions": len(decisions), "unknown": 0})
    for _, decision in decisions:
        if decision is None:
            continue
        # As JSON text: Avro gives the time as a datetime and the id as a UUID.
        decision = {
            **decision,
            "decision_id": str(decision["decision_id"]),
            "decided_at": as_text(decision["decided_at"]),
        }
        action = decision["action"]
        if action in (CONFIRM, REJECT) and decision.get("block_key"):
            out.send(IDENTITY, decision["block_key"], {"kind": "review", "decision": decision})
        elif action == SPLIT:
            for person, other in (
                (decision["person_key"], decision["other_person_key"]),
                (decision["other_person_key"], decision["person_key"]),
            ):
                out.send(
                    PERSON_EVENTS,
                    person,
                    {
                        "kind": "split",
                        "event_id": f"split|{person}|{decision['decision_id']}",
                        "other": other,
                        "occurred_at": decision["decided_at"],
                        "source_org": "hub",
                        "review": review_note(decision),
                        "data": {},
                    },
                )
        else:
            out.count("unknown")
    return out


def as_text(value: Any) -> str:
    """A time as the ISO text the stages compare (Avro gives datetimes)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    return str(value)


def owner_note(request_key: str, person: str) -> dict[str, Any]:
    return {"kind": "owner", "request_key": request_key, "person_key": person}
