"""The Fellegi-Sunter model: comparison levels, their m/u probabilities, and the decision.

Each comparison (given name, family name, date of birth, location) puts a pair of
records at one level, from exact agreement down to clear disagreement. Every level has
an m probability (how often a true match lands there) and a u probability (how often
two different people do). log2(m/u) is that level's Bayes factor; the match weight is
the prior's log-odds plus the sum of the factors, and the probability is
2**w / (1 + 2**w) -- the model splink uses. A missing value contributes nothing.

The m/u values below were set from the noise rates and name frequencies of the
synthetic population (see `accord.synthetic.population`) and tuned on seed 1; they are data, so
re-estimating them from reviewed pairs means editing this table only.

Independence is the model's weak spot: twins share a family name, a date of birth and
an address, so their agreements pile up. Explicit guards therefore sit on top of the
weight: an automatic merge needs the given name, family name and date of birth each to
agree at least approximately, and a household pattern (same family name and date of
birth, clearly different given names) is never a match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from accord.matching.normalise import (
    Features,
    PersonRecord,
    are_distinct_names,
    features,
    nickname_groups,
)

__all__ = [
    "DETERMINISTIC_WEIGHT",
    "LEVELS",
    "MATCH_THRESHOLD",
    "NO_MATCH_THRESHOLD",
    "PRIOR_LOG2_ODDS",
    "MatchResult",
    "Outcome",
    "compare",
    "compare_features",
]

Outcome = Literal["MATCH", "NO_MATCH", "REVIEW"]

# (m, u) per comparison and level.
LEVELS: Final[dict[str, dict[str, tuple[float, float]]]] = {
    "given_name": {
        "exact": (0.86, 0.02),
        "alias": (0.07, 0.002),  # nickname, spelling variant or one part of a double name
        "fuzzy": (0.05, 0.004),
        "initial": (0.01, 0.02),
        "different": (0.01, 0.95),
    },
    "family_name": {
        "exact": (0.88, 0.01),
        "part": (0.03, 0.0005),  # one part of a hyphenated or double name
        "fuzzy": (0.06, 0.004),
        "different": (0.03, 0.985),
    },
    "date_of_birth": {
        "exact": (0.93, 5e-5),
        "typo": (0.06, 5e-4),  # one digit, or day and month swapped
        "near": (0.005, 0.01),  # two digits
        "different": (0.005, 0.9894),
    },
    "location": {
        "same_address": (0.70, 1e-5),
        "same_postcode": (0.12, 2e-5),  # address missing or differing
        "postcode_typo": (0.04, 5e-5),
        "address_in_district": (0.02, 1e-4),  # postcode wrong or missing, same street and number
        "same_sector": (0.01, 0.002),
        "same_district": (0.01, 0.01),
        "different": (0.10, 0.988),
    },
    "name_order": {
        "as_given": (0.98, 0.98),
        "swapped": (0.02, 0.02),
    },
}

PRIOR_LOG2_ODDS: Final = math.log2(1 / 200_000)
"""Log-odds that a query and one listed person are the same, for a list of ~200,000."""

MATCH_THRESHOLD: Final = 5.0
"""Match weight at or above which a pair merges automatically (probability ~0.97)."""
NO_MATCH_THRESHOLD: Final = -2.0
"""Match weight below which a pair is not the same person (probability ~0.2)."""

GENERATION_YEARS: Final = 12
"""Dates of birth this many years apart, and not a keying slip, are never one person."""

NAME_SHARE_FLOOR: Final = 1e-4
"""Smallest name frequency used for term-frequency weights, so a unique name is not proof."""

DETERMINISTIC_WEIGHT: Final = 64.0
"""Finite stand-in for certainty (equal CHI or NHS number) so results stay JSON-safe."""


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The decision about a pair, with the evidence a reviewer needs to check it.

    evidence holds (comparison, level, log2 Bayes factor) for each comparison made, and
    ("rule", name, 0.0) for each guard that limited the outcome.
    """

    outcome: Outcome
    probability: float
    weight: float
    evidence: tuple[tuple[str, str, float], ...]

    def as_dict(self) -> dict[str, object]:
        """A plain dict for a review-queue event or a log of decisions (no names in it)."""
        return {
            "outcome": self.outcome,
            "probability": self.probability,
            "weight": self.weight,
            "evidence": [list(item) for item in self.evidence],
        }


def _bf(comparison: str, level: str) -> float:
    m, u = LEVELS[comparison][level]
    return math.log2(m / u)


_BAYES_FACTORS: Final[dict[tuple[str, str], float]] = {
    (comparison, level): _bf(comparison, level)
    for comparison, levels in LEVELS.items()
    for level in levels
}


def _similar(a: str, b: str) -> bool:
    """A typo apart: one edit in a name of four or more letters, or Jaro-Winkler >= 0.9."""
    if min(len(a), len(b)) >= 4 and DamerauLevenshtein.distance(a, b) <= 1:
        return True
    return JaroWinkler.similarity(a, b) >= 0.9


def given_level(a: tuple[str, tuple[str, ...]], b: tuple[str, tuple[str, ...]]) -> str | None:
    """Level of two given names, as (key, tokens); None when either is missing."""
    key_a, tokens_a = a
    key_b, tokens_b = b
    if not key_a or not key_b:
        return None
    if key_a == key_b:
        return "exact"
    first_a, first_b = tokens_a[0], tokens_b[0]
    if len(first_a) == 1 or len(first_b) == 1:
        return "initial" if first_a[0] == first_b[0] else "different"
    if set(tokens_a) <= set(tokens_b) or set(tokens_b) <= set(tokens_a):
        return "alias"
    if nickname_groups(first_a) & nickname_groups(first_b) or nickname_groups(
        key_a
    ) & nickname_groups(key_b):
        return "alias"
    if are_distinct_names(first_a, first_b):
        return "different"
    if _similar(key_a, key_b):
        return "fuzzy"
    return "different"


def family_level(a: tuple[str, tuple[str, ...]], b: tuple[str, tuple[str, ...]]) -> str | None:
    """Level of two family names, as (key, tokens); None when either is missing."""
    key_a, tokens_a = a
    key_b, tokens_b = b
    if not key_a or not key_b:
        return None
    if key_a == key_b:
        return "exact"
    long_a = {t for t in tokens_a if len(t) > 2}
    long_b = {t for t in tokens_b if len(t) > 2}
    if long_a and long_b and (long_a <= long_b or long_b <= long_a):
        return "part"
    if _similar(key_a, key_b):
        return "fuzzy"
    return "different"


def dob_level(a: date | None, b: date | None) -> str | None:
    """Exact, a keying slip (one digit, or day and month swapped), or different."""
    if a is None or b is None:
        return None
    if a == b:
        return "exact"
    if (a.day, a.month, a.year) == (b.month, b.day, b.year):
        return "typo"
    edits = DamerauLevenshtein.distance(f"{a:%d%m%Y}", f"{b:%d%m%Y}")
    if edits <= 1:
        return "typo"
    return "near" if edits == 2 else "different"


def _outward(postcode: str) -> str:
    return postcode[:-3]


def location_level(a: Features, b: Features) -> str | None:
    """Postcode and first address line judged together, since they are not independent."""
    pa, pb = a.postcode, b.postcode
    same_address = (
        bool(a.address and b.address) and fuzz.token_set_ratio(a.address, b.address) >= 90
    )
    if pa and pb:
        if pa == pb:
            return "same_address" if same_address else "same_postcode"
        if len(pa) == len(pb) and DamerauLevenshtein.distance(pa, pb) <= 1:
            return "same_address" if same_address else "postcode_typo"
        if _outward(pa) == _outward(pb):
            if same_address:
                return "address_in_district"
            return "same_sector" if pa[-3] == pb[-3] else "same_district"
        return "different"
    if same_address:
        return "address_in_district"
    return None


def _probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    if weight < -60:
        return 0.0
    odds = 2.0**weight
    return odds / (1.0 + odds)


_AGREE: Final = frozenset({"exact", "alias", "part"})


def _exact_bf(comparison: str, share: float | None) -> float:
    """Bayes factor of exact agreement, from the name's own frequency when it is known.

    Splink's term-frequency adjustment: agreeing on a rare name (Torquil) is stronger
    evidence than agreeing on a common one (Margaret).
    """
    if share is None:
        return _BAYES_FACTORS[comparison, "exact"]
    m = LEVELS[comparison]["exact"][0]
    return math.log2(m / max(share, NAME_SHARE_FLOOR))


def _names(
    a: Features, b: Features, given_share: float | None, family_share: float | None
) -> tuple[float, list[tuple[str, str, float]], str | None, str | None]:
    """Name evidence in the better of the two orders (given/family as written, or swapped)."""
    best: tuple[float, list[tuple[str, str, float]], str | None, str | None] | None = None
    orders = (
        ("as_given", (a.given, a.given_tokens), (a.family, a.family_tokens)),
        ("swapped", (a.family, a.family_tokens), (a.given, a.given_tokens)),
    )
    for order, given_a, family_a in orders:
        given = given_level(given_a, (b.given, b.given_tokens))
        family = family_level(family_a, (b.family, b.family_tokens))
        evidence = []
        total = 0.0
        if given is not None:
            bf = (
                _exact_bf("given_name", given_share)
                if given == "exact"
                else _BAYES_FACTORS["given_name", given]
            )
            evidence.append(("given_name", given, bf))
        if family is not None:
            bf = (
                _exact_bf("family_name", family_share)
                if family == "exact"
                else _BAYES_FACTORS["family_name", family]
            )
            evidence.append(("family_name", family, bf))
        evidence.append(("name_order", order, _BAYES_FACTORS["name_order", order]))
        total = sum(item[2] for item in evidence)
        if order == "swapped" and (given is None or family is None):
            continue  # a swap is only evidence when both names line up crossed
        if best is None or total > best[0]:
            best = (total, evidence, given, family)
        if given in _AGREE and family in _AGREE:
            break  # names agree as written: no need to try them swapped
    assert best is not None
    return best


def _identifier(a: Features, b: Features) -> tuple[str, str] | None:
    """('chi'|'nhs_number', 'equal'|'conflict') when both records carry the identifier."""
    for name, value_a, value_b in (("chi", a.chi, b.chi), ("nhs_number", a.nhs, b.nhs)):
        if value_a and value_b:
            return name, "equal" if value_a == value_b else "conflict"
    return None


def compare_features(
    a: Features, b: Features, given_share: float | None = None, family_share: float | None = None
) -> MatchResult:
    """Decide about two normalised records; see `compare`.

    given_share and family_share are the frequencies of b's names among the people known
    (a `Matcher` supplies them); without them the table's average u probabilities apply.
    """
    identifier = _identifier(a, b)
    if identifier is not None and identifier[1] == "equal":
        return MatchResult("MATCH", 1.0, DETERMINISTIC_WEIGHT, (identifier + (0.0,),))

    _, evidence, given, family = _names(a, b, given_share, family_share)
    dob = dob_level(a.dob, b.dob)
    if dob is not None:
        evidence.append(("date_of_birth", dob, _BAYES_FACTORS["date_of_birth", dob]))
    location = location_level(a, b)
    if location is not None:
        evidence.append(("location", location, _BAYES_FACTORS["location", location]))
    weight = PRIOR_LOG2_ODDS + sum(item[2] for item in evidence)

    outcome: Outcome
    if weight >= MATCH_THRESHOLD:
        outcome = "MATCH"
    elif weight < NO_MATCH_THRESHOLD:
        outcome = "NO_MATCH"
    else:
        outcome = "REVIEW"

    rules: list[str] = []
    if identifier is not None:  # two different valid identifiers: two different people
        rules.append(f"{identifier[0]}_conflict")
        outcome = "NO_MATCH"
    elif given == "different" and dob == "exact" and family in ("exact", "part"):
        rules.append("household_pattern")  # twins or siblings: same family and birthday
        outcome = "NO_MATCH"
    elif dob == "different" and abs(a.dob.year - b.dob.year) >= GENERATION_YEARS:  # type: ignore[union-attr]
        rules.append("generation_apart")  # a parent and child of the same name, say
        outcome = "NO_MATCH"
    elif outcome == "MATCH" and (
        dob not in ("exact", "typo")
        or given not in ("exact", "alias", "fuzzy")
        or family not in ("exact", "part", "fuzzy")
    ):
        rules.append("needs_name_and_dob")  # never merge on address and one attribute alone
        outcome = "REVIEW"
    evidence.extend(("rule", rule, 0.0) for rule in rules)
    return MatchResult(outcome, _probability(weight), round(weight, 3), tuple(evidence))


def compare(a: PersonRecord, b: PersonRecord) -> MatchResult:
    """Decide whether two records are the same person: MATCH, NO_MATCH or REVIEW.

    Equal CHI (or NHS) numbers match outright; two different ones never match. Otherwise
    the Fellegi-Sunter weight decides, within the guards described in the module doc.
    Pure and free of I/O, so that it can run inside a stream agent.
    """
    return compare_features(features(a), features(b))
