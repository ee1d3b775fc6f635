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
"""

from __future__ import annotations

from datetime import date
from typing import Any

from accord.core.pseudonym import person_key
from accord.matching import Matcher, PersonRecord

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
    for candidate in block:
        if not candidate.get("merged_into") and not candidate.get("erased"):
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
            "dataset": envelope["dataset"],
            "source_org": envelope["source_org"],
            "provisional_key": provisional,
            "candidate_key": best,
            "probability": round(result.probability, 4),
            "weight": round(result.weight, 2),
            "model": result.model_version,
            "evidence": [list(item) for item in result.evidence],
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


def remembered(person: dict[str, Any], event_id: str, memo: dict[str, Any]) -> dict[str, Any]:
    """The person with how `event_id` resolved to them remembered."""
    return {**person, "resolved": {**(person.get("resolved") or {}), event_id: memo}}


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
