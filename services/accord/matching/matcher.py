"""An index of known people that finds the best candidate for a record without comparing
it against everyone.

Blocking: a query is compared only with people who share at least one blocking key. The
rules (`BLOCKING_RULES`) are chosen so that their union forgives any one of date of
birth, postcode or family name being wrong or missing:

- date of birth (the query's also with day and month swapped);
- postcode plus given-name initial (a mistyped or missing date of birth);
- Soundex of a family name part plus birth year plus given-name initial (moved and a
  slipped day or month);
- first address line plus family-name initial (postcode and date of birth both wrong).

Each is also tried the other way round for swapped names. A true match that fails every
rule (moved, with no date of birth, say) is missed: such a record arrives as a new person
rather than as someone else; the evaluation counts these as recall lost to blocking.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any, Final

from accord.matching.model import MatchModel, MatchResult, compare_features, default_model
from accord.matching.normalise import Features, PersonRecord, features, phonetic

__all__ = ["AMBIGUITY_MARGIN", "BLOCKING_RULES", "Matcher", "record_from_dict", "record_to_dict"]

AMBIGUITY_MARGIN: Final = 8.0
"""A merge needs its best candidate to beat any other plausible one by this many bits."""

TERM_FREQUENCY_MINIMUM: Final = 1000
"""Below this many people, name frequencies are too noisy; average u probabilities apply."""

STATE_VERSION: Final = 1

_RANK: Final = {"MATCH": 2, "REVIEW": 1, "NO_MATCH": 0}


def record_to_dict(record: PersonRecord) -> dict[str, str | None]:
    """A JSON-able dict of a record (date of birth as ISO text)."""
    return {
        "given_name": record.given_name,
        "family_name": record.family_name,
        "date_of_birth": record.date_of_birth.isoformat() if record.date_of_birth else None,
        "postcode": record.postcode,
        "address_line1": record.address_line1,
        "chi_number": record.chi_number,
        "nhs_number": record.nhs_number,
    }


def record_from_dict(data: dict[str, Any]) -> PersonRecord:
    """The inverse of `record_to_dict`."""
    dob = data.get("date_of_birth")
    return PersonRecord(
        given_name=data.get("given_name"),
        family_name=data.get("family_name"),
        date_of_birth=date.fromisoformat(dob) if dob else None,
        postcode=data.get("postcode"),
        address_line1=data.get("address_line1"),
        chi_number=data.get("chi_number"),
        nhs_number=data.get("nhs_number"),
    )


def _interned(f: Features) -> Features:
    """Share the strings of common names and postcodes between records to save memory."""
    return f._replace(
        given=sys.intern(f.given),
        given_tokens=tuple(sys.intern(t) for t in f.given_tokens),
        family=sys.intern(f.family),
        family_tokens=tuple(sys.intern(t) for t in f.family_tokens),
        postcode=sys.intern(f.postcode),
    )


BLOCKING_RULES: Final[dict[str, str]] = {
    "d": "date_of_birth",
    "p": "postcode+given_initial",
    "f": "family_phonetic+birth_year+given_initial",
    "a": "address+family_initial",
}
"""Blocking rules by the one-letter prefix of their keys."""


def _name_keys(tokens: tuple[str, ...], key: str, year: int, initial: str) -> Iterator[str]:
    """Soundex of each family name part, with birth year and the other name's initial."""
    parts = {t for t in tokens if len(t) > 2}
    if len(tokens) > 1:
        parts.add(key)
    for part in parts:
        yield f"f{phonetic(part)}{year}{initial}"


def _keys(f: Features, given: str, family_tokens: tuple[str, ...], family: str) -> set[str]:
    keys = set()
    if f.dob is not None:
        keys.add(f"d{f.dob.isoformat()}")
        if family:
            keys.update(_name_keys(family_tokens, family, f.dob.year, given[:1]))
    if f.postcode and given:
        keys.add(f"p{f.postcode}{given[:1]}")
    if f.address and family:
        keys.add(f"a{f.address}|{family[:1]}")
    return keys


def _index_keys(f: Features) -> set[str]:
    return _keys(f, f.given, f.family_tokens, f.family)


def _query_keys(f: Features) -> set[str]:
    keys = _index_keys(f) | _keys(f, f.family, f.given_tokens, f.given)  # and names swapped
    if f.dob is not None and f.dob.day <= 12 and f.dob.day != f.dob.month:
        try:
            keys.add(f"d{f.dob.replace(month=f.dob.day, day=f.dob.month).isoformat()}")
        except ValueError:
            pass
    return keys


class Matcher:
    """Known people, indexed for blocking; `best` finds who a record is about, if anyone.

    Pure and in memory: no I/O, no logging of names. `to_state` and `from_state` give a
    plain JSON-able dict, so a faust table (or a file) can hold it.
    """

    def __init__(self, model: MatchModel | None = None) -> None:
        self._model = model
        self._ids: list[str] = []
        self._records: list[PersonRecord] = []
        self._features: list[Features] = []
        self._slot: dict[str, int] = {}
        self._blocks: dict[str, list[int]] = {}
        self._identifiers: dict[str, int] = {}
        self._given_counts: Counter[str] = Counter()
        self._family_counts: Counter[str] = Counter()

    @property
    def model(self) -> MatchModel:
        """The trained model scoring pairs (`default_model()` unless one was given)."""
        if self._model is None:
            self._model = default_model()
        return self._model

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._slot

    def add(self, person_id: str, record: PersonRecord) -> None:
        """Add a person, or replace what is known about them (their old keys are dropped)."""
        f = _interned(features(record))
        slot = self._slot.get(person_id)
        if slot is None:
            slot = len(self._ids)
            self._ids.append(person_id)
            self._records.append(record)
            self._features.append(f)
            self._slot[person_id] = slot
        else:
            self._unindex(slot)
            self._records[slot] = record
            self._features[slot] = f
        for key in _index_keys(f):
            self._blocks.setdefault(key, []).append(slot)
        self._given_counts[f.given] += 1
        self._family_counts[f.family] += 1
        for name, value in (("c", f.chi), ("n", f.nhs)):
            if value:
                self._identifiers[name + value] = slot

    def _unindex(self, slot: int) -> None:
        old = self._features[slot]
        self._given_counts[old.given] -= 1
        self._family_counts[old.family] -= 1
        for key in _index_keys(old):
            members = self._blocks.get(key)
            if members is not None and slot in members:
                members.remove(slot)
                if not members:
                    del self._blocks[key]
        for name, value in (("c", old.chi), ("n", old.nhs)):
            if value and self._identifiers.get(name + value) == slot:
                del self._identifiers[name + value]

    def candidates(self, record: PersonRecord) -> list[str]:
        """Ids of the people a record would be compared with (for tests and diagnostics)."""
        return [self._ids[slot] for slot in sorted(self._candidate_slots(features(record)))]

    def candidates_by_rule(self, record: PersonRecord) -> dict[str, set[str]]:
        """Ids each blocking rule proposes for a record (to report each rule's cost)."""
        found: dict[str, set[str]] = {name: set() for name in BLOCKING_RULES.values()}
        for key in _query_keys(features(record)):
            rule = BLOCKING_RULES[key[0]]
            found[rule].update(self._ids[slot] for slot in self._blocks.get(key, ()))
        return found

    def _candidate_slots(self, f: Features) -> set[int]:
        slots: set[int] = set()
        for key in _query_keys(f):
            slots.update(self._blocks.get(key, ()))
        return slots

    def _compare(self, f: Features, slot: int) -> MatchResult:
        known = self._features[slot]
        people = len(self._slot)
        if people < TERM_FREQUENCY_MINIMUM:
            return compare_features(f, known, model=self.model)
        return compare_features(
            f,
            known,
            self._given_counts[known.given] / people,
            self._family_counts[known.family] / people,
            model=self.model,
        )

    def best(self, record: PersonRecord) -> tuple[str | None, MatchResult]:
        """The most likely known person and the decision about them.

        An equal CHI or NHS number decides at once. Otherwise every blocked candidate is
        scored; a MATCH becomes REVIEW when another candidate is nearly as likely, since
        then the record cannot say which of two people it is about. With no candidate at
        all, the answer is (None, NO_MATCH).
        """
        f = features(record)
        for name, value in (("c", f.chi), ("n", f.nhs)):
            slot = self._identifiers.get(name + value) if value else None
            if slot is not None:
                return self._ids[slot], self._compare(f, slot)

        scored = [(self._compare(f, slot), slot) for slot in self._candidate_slots(f)]
        if not scored:
            model = self.model
            return None, MatchResult(
                "NO_MATCH", 0.0, round(model.prior_log2_odds, 3), (("model", model.version, 0.0),)
            )
        scored.sort(key=lambda item: (_RANK[item[0].outcome], item[0].weight), reverse=True)
        result, slot = scored[0]
        if result.outcome == "MATCH" and len(scored) > 1:
            runner_up = scored[1][0]
            if (
                runner_up.outcome != "NO_MATCH"
                and runner_up.weight >= self.model.match_weight
                and result.weight - runner_up.weight < AMBIGUITY_MARGIN
            ):
                result = MatchResult(
                    "REVIEW",
                    result.probability,
                    result.weight,
                    result.evidence[:-1] + (("rule", "ambiguous", 0.0),) + result.evidence[-1:],
                )
        return self._ids[slot], result

    def to_state(self) -> dict[str, Any]:
        """Everything needed to rebuild the index, as plain JSON-able data."""
        return {
            "version": STATE_VERSION,
            "people": {
                person_id: record_to_dict(self._records[slot])
                for person_id, slot in self._slot.items()
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], model: MatchModel | None = None) -> Matcher:
        """Rebuild a matcher from `to_state`'s output."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported matcher state version {state.get('version')!r}")
        matcher = cls(model)
        for person_id, data in state["people"].items():
            matcher.add(person_id, record_from_dict(data))
        return matcher
