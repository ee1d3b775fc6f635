"""Resolving which person an event is about, within its matching block.

Events with a CHI or NHS number carry their person key already (deterministic). Others
are compared with the people already known in their block (same date of birth) by the
probabilistic matcher: a MATCH joins that person; REVIEW goes to the review queue and is
never merged automatically; NO_MATCH starts a provisional person, registered in the block
so later events about the same person join it. Provisional keys derive from the event's
request key (or event id), so re-processing an event resolves it to the same key.
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
        people = [p for p in block if p["person_key"] != known]
        merges = provisional_matches(people, person_record(data))
        people = [p for p in people if p["person_key"] not in merges]
        people.append(identity_of(known, data, provisional=False))
        return known, people, None, merges

    provisional = person_key(
        secret, envelope.get("request_key") or envelope["event_id"], scheme="provisional"
    )
    if any(p["person_key"] == provisional for p in block):
        return provisional, block, None, []  # the same event again: it resolved to itself

    # The matcher ranks candidates and turns a MATCH into REVIEW when a second candidate
    # is nearly as good: two plausible people is not a match.
    matcher = Matcher()
    for candidate in block:
        matcher.add(candidate["person_key"], person_record(candidate))
    best, result = matcher.best(person_record(data))
    review = None
    if best is not None and result.outcome == "MATCH":
        envelope["match_method"] = "probabilistic"
        envelope["match_probability"] = round(result.probability, 4)
        return best, block, None, []
    if best is not None and result.outcome == "REVIEW":
        review = {
            "event_id": envelope["event_id"],
            "dataset": envelope["dataset"],
            "source_org": envelope["source_org"],
            "provisional_key": provisional,
            "candidate_key": best,
            "probability": round(result.probability, 4),
            "weight": round(result.weight, 2),
            "evidence": [list(item) for item in result.evidence],
        }
    envelope["match_method"] = "none"
    return provisional, [*block, identity_of(provisional, data, provisional=True)], review, []


def provisional_matches(people: list[dict[str, Any]], record: PersonRecord) -> list[str]:
    """Provisional people in the block that are surely this person (MATCH, not REVIEW)."""
    matcher = Matcher()
    for candidate in people:
        if candidate.get("provisional"):
            matcher.add(candidate["person_key"], person_record(candidate))
    if not len(matcher):
        return []
    best, result = matcher.best(record)
    return [best] if best is not None and result.outcome == "MATCH" else []
