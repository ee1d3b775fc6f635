"""Resolving which person an event is about, within its matching block.

Events with a CHI or NHS number carry their person key already (deterministic). Others
are compared with the people already known in their block (same date of birth) by the
probabilistic matcher: a MATCH joins that person; REVIEW goes to the review queue and is
never merged automatically; NO_MATCH starts a provisional person, registered in the block
so later events about the same person join it. Provisional keys derive from the event's
request key (or event id), so re-processing an event resolves it to the same key.

A provisional person merged into an identified one stays in the block, marked
`merged_into`, and is no longer a candidate: an event about them read again after a crash
resolves to them as the first time (their case forwards it), and the identified person's
event read again asks for the same merge again rather than for none.

An opted-out person is erased from the block (`erase`, asked for by the join stage): their
identifying fields, and those of the provisional people merged into them, leave it for
good, and they are no longer a candidate.

Probabilistic decisions are scored by the trained model named in the settings
(`ACCORD_MATCH_MODEL_FILE`, default the model shipped in accord/matching/models/); its
version is kept with the match (`match_model`) and in a review item's evidence.

Every event resolved without a CHI is remembered by its id on the person it resolved to
(`resolved`: method, probability, review), so reading it again resolves it the same way
even when the block has changed since: matching depends on who is in the block, a replay
must not.

Reviews (`review`, `split`). A reviewer settles a queued pair (`accord match review`):
confirmed, the provisional person is marked `merged_into` the listed one and their case
is asked to merge, as an automatic merge is; rejected, each of the two names the other in
`distinct`, and the matcher is never shown the pair again: a person's `distinct` people
are left out of the candidates the identity stage indexes for them (`candidates`), the
one interface between a review and the matcher. A split (a wrong merge undone) clears
`merged_into` and records the pair as distinct. A decided pair's review is cleared from
the memo, so an event read again does not queue it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from accord.core.pseudonym import person_key
from accord.matching import Matcher, PersonRecord
from accord.matching.actions import CONFIRM, REJECT, SPLIT

IDENTITY_FIELDS = ("given_name", "family_name", "date_of_birth", "postcode", "address_line1")


def person_record(fields: dict[str, Any]) -> PersonRecord:
    dob = fields.get("date_of_birth")
    return PersonRecord(
        given_name=fields.get("given_name") or "",
        family_name=fields.get("family_name") or "",
        date_of_birth=date.fromisoformat(dob) if dob else None,
        postcode=fields.get("postcode") or "",
        address_line1=fields.get("address_line1"),
    )


def identity_of(person: str, data: dict[str, Any], provisional: bool) -> dict[str, Any]:
    return {
        "person_key": person,
        "provisional": provisional,
        **{name: data.get(name) for name in IDENTITY_FIELDS},
    }


def resolve(
    block: list[dict[str, Any]], envelope: dict[str, Any], secret: str
) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None, list[str]]:
    """(person key, the block's updated people, a review item or None, provisional people
    to merge into this one) for an event.

    Merges happen when an identified person (CHI, NHS number) arrives after requests that
    started a provisional person who matches them: requests often reach the hub before
    the list does, and the person must still end with one case.
    """
    data = envelope["data"]
    known = envelope.get("person_key")
    if known:
        if all(data.get(name) is None for name in IDENTITY_FIELDS):
            return known, block, None, []  # nothing to match on, nothing to add
        previous = next((p for p in block if p["person_key"] == known), None)
        others = [p for p in block if p["person_key"] != known]
        apart = set((previous or {}).get("distinct") or ())
        others = [p for p in others if p["person_key"] not in apart]
        found = [m for m in provisional_matches(others, person_record(data)) if m != known]
        person = identity_of(known, data, provisional=False)
        if previous is not None and previous.get("erased"):
            # Opted out: a record read again, or a new one, brings nothing back.
            person = {**identity_of(known, {}, provisional=False), "erased": True}
        if previous is not None and previous.get("resolved"):
            person["resolved"] = previous["resolved"]
        # In place, so that reading the event again leaves the block as it was.
        people = [
            person
            if p is previous
            else {**p, "merged_into": known}
            if p["person_key"] in found
            else p
            for p in block
        ]
        if previous is None:
            people.append(person)
        # Merges already made are asked for again: a replay must not lose one whose
        # merge event never reached the broker (the join applies a repeated merge once).
        merges = [p["person_key"] for p in people if p.get("merged_into") == known]
        return known, people, None, merges

    event_id = envelope["event_id"]
    for candidate in block:
        memo = (candidate.get("resolved") or {}).get(event_id)
        if memo is not None:  # the same event again: resolved as the first time
            envelope["match_method"] = memo["method"]
            if memo.get("model") is not None:
                envelope["match_model"] = memo["model"]
            if memo.get("probability") is not None:
                envelope["match_probability"] = memo["probability"]
            return candidate["person_key"], block, memo.get("review"), []
    provisional = person_key(secret, envelope.get("request_key") or event_id, scheme="provisional")
    if any(p["person_key"] == provisional for p in block):
        envelope["match_method"] = "none"
        return provisional, block, None, []  # another event of the same request

    # The matcher ranks candidates and turns a MATCH into REVIEW when a second candidate
    # is nearly as good: two plausible people is not a match.
    matcher = Matcher()
    for candidate in candidates(block):
        matcher.add(candidate["person_key"], person_record(candidate))
    best, result = matcher.best(person_record(data))
    review = None
    if best is not None and result.outcome == "MATCH":
        envelope["match_method"] = "probabilistic"
        envelope["match_probability"] = round(result.probability, 4)
        envelope["match_model"] = result.model_version
        memo = {
            "method": "probabilistic",
            "probability": envelope["match_probability"],
            "model": result.model_version,
        }
        people = [remembered(p, event_id, memo) if p["person_key"] == best else p for p in block]
        return best, people, None, []
    if best is not None and result.outcome == "REVIEW":
        review = {
            "event_id": envelope["event_id"],
            "block_key": envelope.get("block_key"),
            "queued_at": envelope.get("occurred_at"),
            "dataset": envelope["dataset"],
            "source_org": envelope["source_org"],
            "provisional_key": provisional,
            "candidate_key": best,
            "probability": round(result.probability, 4),
            "weight": round(result.weight, 2),
            "model": result.model_version,
            "evidence": [list(item) for item in result.evidence],
            # What a reviewer compares, and nothing more: the identifying fields of both
            # (no needs, contact details or identifiers). Cleared when the pair is decided.
            "records": {
                "queued": {name: data.get(name) for name in IDENTITY_FIELDS},
                "candidate": next(
                    {name: p.get(name) for name in IDENTITY_FIELDS}
                    for p in block
                    if p["person_key"] == best
                ),
            },
        }
    envelope["match_method"] = "none"
    person = remembered(
        identity_of(provisional, data, provisional=True),
        event_id,
        {"method": "none", "review": review},
    )
    return provisional, [*block, person], review, []


def erase(block: list[dict[str, Any]], person: str) -> list[dict[str, Any]]:
    """The block without the identifying fields of `person` and of the provisional people
    merged into them (an opt-out); they stay, marked `erased`, so that their keys and the
    memo of how events resolved still hold. The same block object when nothing changes."""
    changed = False
    people = []
    for p in block:
        if (p["person_key"] == person or p.get("merged_into") == person) and not p.get("erased"):
            p = {**p, **dict.fromkeys(IDENTITY_FIELDS), "erased": True}
            changed = True
        people.append(p)
    return people if changed else block


def settled_reviews(
    block: list[dict[str, Any]], people: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """(the block with every queued review about any of `people` cleared from the memo,
    the review keys to remove from hub.match.review): an opted-out person's identifying
    fields must not wait in the review queue either."""
    keys, cleared = [], []
    for p in block:
        memo = p.get("resolved") or {}
        about = {
            event_id
            for event_id, m in memo.items()
            if (r := m.get("review"))
            and (r.get("provisional_key") in people or r.get("candidate_key") in people)
        }
        if about:
            keys += sorted({memo[e]["review"]["provisional_key"] for e in about})
            p = {
                **p,
                "resolved": {
                    e: {**m, "review": None} if e in about else m for e, m in memo.items()
                },
            }
        cleared.append(p)
    return (cleared if keys else block), keys


def remembered(person: dict[str, Any], event_id: str, memo: dict[str, Any]) -> dict[str, Any]:
    """The person with how `event_id` resolved to them remembered."""
    return {**person, "resolved": {**(person.get("resolved") or {}), event_id: memo}}


def candidates(people: list[dict[str, Any]], person: str | None = None) -> list[dict[str, Any]]:
    """The people of a block the matcher may propose for `person`: not merged, not erased,
    and not recorded as distinct from them by a review (`distinct`, either side)."""
    return [
        p
        for p in people
        if not p.get("merged_into")
        and not p.get("erased")
        and (person is None or person not in (p.get("distinct") or ()))
    ]


def provisional_matches(people: list[dict[str, Any]], record: PersonRecord) -> list[str]:
    """Provisional people in the block that are surely this person (MATCH, not REVIEW)."""
    matcher = Matcher()
    for candidate in people:
        if candidate.get("provisional") and not candidate.get("merged_into"):
            matcher.add(candidate["person_key"], person_record(candidate))
    if not len(matcher):
        return []
    best, result = matcher.best(record)
    return [best] if best is not None and result.outcome == "MATCH" else []


@dataclass
class Settled:
    """What a review decision did to a block: the people to store (the same list when
    nothing changed), a merge to ask for (provisional, target), whether the queued review
    is done (its record on hub.match.review is then removed) and why it was refused."""

    people: list[dict[str, Any]]
    merge: tuple[str, str] | None = None
    done: bool = False
    refused: str | None = None


def _apart(person: dict[str, Any], other: str) -> dict[str, Any]:
    return {**person, "distinct": sorted({*(person.get("distinct") or ()), other})}


def _without_review(person: dict[str, Any], other: str) -> dict[str, Any]:
    """The person with the queued review of them against `other` cleared from the memo."""
    memo = person.get("resolved") or {}
    if not any((m.get("review") or {}).get("candidate_key") == other for m in memo.values()):
        return person
    cleared = {
        event_id: {**m, "review": None}
        if (m.get("review") or {}).get("candidate_key") == other
        else m
        for event_id, m in memo.items()
    }
    return {**person, "resolved": cleared}


def settle(block: list[dict[str, Any]], decision: dict[str, Any]) -> Settled:
    """Apply a reviewer's decision about (`person_key`, `other_person_key`) to the block.

    CONFIRM: the provisional person (`person_key`) is merged into the other; REJECT: the
    two are recorded as distinct; SPLIT: a merge of the two is undone and they are
    recorded as distinct. Deciding the same thing again changes nothing (a decision read
    again after a crash), and a decision that no longer fits the block is refused, with a
    reason code and nothing changed."""
    action, first, second = decision["action"], decision["person_key"], decision["other_person_key"]
    by_key = {p["person_key"]: p for p in block}
    one, other = by_key.get(first), by_key.get(second)
    if action == SPLIT:
        if one is None and other is None:
            return Settled(block, refused="not_in_block")
        people = []
        for p in block:
            if p["person_key"] in (first, second):
                partner = second if p["person_key"] == first else first
                p = _apart(p, partner)
                if p.get("merged_into") == partner:
                    p = {k: v for k, v in p.items() if k != "merged_into"}
            people.append(p)
        return Settled(people, done=True)
    if one is None or other is None:
        return Settled(block, refused="not_in_block")
    if one.get("erased") or other.get("erased"):
        return Settled(block, refused="erased")
    if action == CONFIRM:
        if one.get("merged_into") == second:
            return Settled(block, merge=(first, second), done=True)  # asked for again
        if not one.get("provisional"):
            return Settled(block, refused="not_provisional")
        if one.get("merged_into") or other.get("merged_into"):
            return Settled(block, refused="merged_elsewhere")
        if second in (one.get("distinct") or ()):
            return Settled(block, refused="rejected_before")
        people = [
            {**_without_review(p, second), "merged_into": second} if p is one else p for p in block
        ]
        return Settled(people, merge=(first, second), done=True)
    if action == REJECT:
        if one.get("merged_into") == second or other.get("merged_into") == first:
            return Settled(block, refused="already_merged")
        people = [
            _without_review(_apart(p, second), second)
            if p is one
            else _without_review(_apart(p, first), first)
            if p is other
            else p
            for p in block
        ]
        return Settled(people, done=True)
    return Settled(block, refused="unknown_action")
