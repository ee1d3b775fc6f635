"""The Fellegi-Sunter model: comparison levels, their trained m/u probabilities, the decision.

Each comparison (given name, family name, date of birth, location) puts a pair of
records at one level, from exact agreement down to clear disagreement. Every level has
an m probability (how often a true match lands there) and a u probability (how often
two different people do). log2(m/u) is that level's Bayes factor; the match weight is
the prior's log-odds plus the sum of the factors, and the probability is
2**w / (1 + 2**w) -- the model splink uses. A missing value contributes nothing.

The m and u values, the prior and the two thresholds are not written here: they are
learnt from the records by `accord match train` (splink: u by random sampling, m by
expectation maximisation over blocked pairs; see `accord.matching.training`) and read
from a versioned model file (`MatchModel`). The level functions below are the only
definition of the levels: training calls the same functions (as DuckDB functions), so
the levels splink counted are the levels scored here. Exact agreement on a name is
term-frequency adjusted, as splink does: its u is the name's own frequency among the
people known, so agreeing on Torquil weighs more than agreeing on Margaret.

Independence is the model's weak spot: twins share a family name, a date of birth and
an address, so their agreements pile up. Explicit guards therefore sit on top of the
weight: an automatic merge needs the given name, family name and date of birth each to
agree at least approximately (or, with the family name missing, the given name, the
date of birth and the home to agree exactly; never with the given name missing), and a
household pattern (same family name and date of birth, clearly different given names)
is never a match, nor is a pair whose given names
and dates of birth both disagree (a spouse or sibling at the same address), nor one whose
dates of birth are a generation apart.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Final, Literal

import jellyfish
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
    "COMPARISONS",
    "DEFAULT_MODEL_FILE",
    "DETERMINISTIC_WEIGHT",
    "MODEL_FORMAT",
    "MatchModel",
    "MatchResult",
    "Outcome",
    "compare",
    "compare_features",
    "default_model",
    "load_model",
]

Outcome = Literal["MATCH", "NO_MATCH", "REVIEW"]

COMPARISONS: Final[dict[str, tuple[str, ...]]] = {
    "given_name": ("exact", "alias", "fuzzy", "initial", "different"),
    "family_name": ("exact", "part", "fuzzy", "similar", "different"),
    "date_of_birth": ("exact", "typo", "near", "different"),
    "location": (
        "same_address",
        "same_postcode",
        "postcode_typo",
        "address_in_district",
        "same_sector",
        "same_district",
        "different",
    ),
}
"""Comparisons and their levels, strongest first (what a model file must give m and u for).

given_name alias: a nickname, spelling variant or one part of a double name; family_name
part: one part of a hyphenated or double name, fuzzy: one edit or Jaro-Winkler >= 0.9,
similar: further apart but alike (two edits, Jaro-Winkler >= 0.85 or the same Metaphone
code: a phonetic respelling or a misread pair of letters); date_of_birth typo: one digit, or day and
month swapped, near: two digits; location address_in_district: the postcode wrong or
missing but the same street and number.
"""

TERM_FREQUENCY_COMPARISONS: Final = ("given_name", "family_name")
"""Comparisons whose exact level is term-frequency adjusted."""

MODEL_FORMAT: Final = 1
"""Version of the model file's layout (not of the model: that is its `version`)."""

DEFAULT_MODEL_FILE: Final = Path(__file__).parent / "models" / "default.json"
"""The model shipped with Accord, trained by `accord match train` on the synthetic list."""

GENERATION_YEARS: Final = 12
"""Dates of birth this many years apart, and not a keying slip, are never one person."""

NAME_SHARE_FLOOR: Final = 1e-4
"""Smallest name frequency used for term-frequency weights, so a unique name is not proof."""

DETERMINISTIC_WEIGHT: Final = 64.0
"""Finite stand-in for certainty (equal CHI or NHS number) so results stay JSON-safe."""


def __getattr__(name: str) -> float:
    """The constants of the hand-set model before training, now read from the trained one
    (kept so that older imports of MATCH_THRESHOLD, NO_MATCH_THRESHOLD and
    PRIOR_LOG2_ODDS still work)."""
    if name not in ("MATCH_THRESHOLD", "NO_MATCH_THRESHOLD", "PRIOR_LOG2_ODDS"):
        # Not a reason to read the model (the import system asks for __path__, say): an
        # unreadable model file must not break importing this module.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    model = default_model()
    if name == "MATCH_THRESHOLD":
        return model.match_weight
    if name == "NO_MATCH_THRESHOLD":
        return model.no_match_weight
    if name == "PRIOR_LOG2_ODDS":
        return model.prior_log2_odds
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ModelError(ValueError):
    """A model file that cannot be used (missing levels, wrong format); names the file."""


@dataclass(frozen=True, slots=True)
class MatchModel:
    """A trained model as the scorer needs it: Bayes factors, the prior, the thresholds.

    Built from a model file (`load_model`); `version` is named in every decision's evidence.
    """

    version: str
    prior_log2_odds: float
    match_weight: float
    no_match_weight: float
    bayes_factors: dict[tuple[str, str], float]
    m_exact: dict[str, float]
    trained_list_size: int | None = None

    def for_list(self, people: int) -> MatchModel:
        """The model with its prior moved to a list of `people`.

        The trained prior is the chance that a request and one listed person are the same
        for the list it was trained on; against a list k times longer it is k times
        smaller (each request is about one person at most). Thresholds are on the
        posterior weight, so they stay as chosen.
        """
        if not self.trained_list_size or people <= 0:
            return self
        shift = math.log2(self.trained_list_size / people)
        return replace(self, prior_log2_odds=self.prior_log2_odds + shift)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model") -> MatchModel:
        """Read the parts of a model file the scorer uses; refuse an incomplete one."""
        if data.get("format") != MODEL_FORMAT:
            raise ModelError(f"{source}: unsupported model format {data.get('format')!r}")
        try:
            factors: dict[tuple[str, str], float] = {}
            m_exact: dict[str, float] = {}
            for comparison, labels in COMPARISONS.items():
                levels = {lv["label"]: lv for lv in data["comparisons"][comparison]["levels"]}
                for label in labels:
                    m, u = float(levels[label]["m"]), float(levels[label]["u"])
                    if not (0 < m <= 1 and 0 < u <= 1):
                        raise ModelError(
                            f"{source}: {comparison}.{label} needs 0 < m, u <= 1 (m={m}, u={u})"
                        )
                    factors[comparison, label] = math.log2(m / u)
                m_exact[comparison] = float(levels[COMPARISONS[comparison][0]]["m"])
            thresholds = data["thresholds"]
            return cls(
                version=str(data["version"]),
                prior_log2_odds=float(data["prior"]["log2_odds"]),
                match_weight=float(thresholds["match_weight"]),
                no_match_weight=float(thresholds["no_match_weight"]),
                bayes_factors=factors,
                m_exact=m_exact,
                trained_list_size=(data.get("training_data") or {}).get("listed_records"),
            )
        except KeyError as exc:
            raise ModelError(f"{source}: missing {exc.args[0]!r}") from None


def load_model(path: Path | str) -> MatchModel:
    """Read a model file written by `accord match train`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file (train one: accord match train)") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    return MatchModel.from_dict(data, source=str(path))


@functools.lru_cache(maxsize=8)
def _cached(path: str) -> MatchModel:
    return load_model(path)


def default_model() -> MatchModel:
    """The model named by `ACCORD_MATCH_MODEL_FILE`, or the one shipped with Accord.

    Read once per process: a retrained file takes effect when the worker restarts, so one
    worker never scores a stream with two models.
    """
    from accord.core.settings import get_settings

    return _cached(str(get_settings().match_model_file or DEFAULT_MODEL_FILE))


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The decision about a pair, with the evidence a reviewer needs to check it.

    evidence holds (comparison, level, log2 Bayes factor) for each comparison made,
    ("rule", name, 0.0) for each guard that limited the outcome, and ("model", version,
    0.0) naming the trained model that scored the pair.
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

    @property
    def model_version(self) -> str | None:
        """The version of the model that scored the pair (None for a deterministic match)."""
        return next((item[1] for item in self.evidence if item[0] == "model"), None)


def _similar(a: str, b: str) -> bool:
    """A typo apart: one edit in a name of four or more letters, or Jaro-Winkler >= 0.9."""
    if min(len(a), len(b)) >= 4 and DamerauLevenshtein.distance(a, b) <= 1:
        return True
    return JaroWinkler.similarity(a, b) >= 0.9


@functools.lru_cache(maxsize=1 << 16)  # names repeat: each pair is judged once
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
    if are_distinct_names(first_a, first_b):
        return "different"  # before nicknames: Marjorie is not a Margaret
    if nickname_groups(first_a) & nickname_groups(first_b) or nickname_groups(
        key_a
    ) & nickname_groups(key_b):
        return "alias"
    if _similar(key_a, key_b):
        return "fuzzy"
    return "different"


@functools.lru_cache(maxsize=1 << 16)  # names repeat: each pair is judged once
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
    if _alike(key_a, key_b):
        return "similar"
    return "different"


def _alike(a: str, b: str) -> bool:
    """Further than a typo but plainly the same family name misspelt: one edit in a name
    of three letters, two in one of five or more, Jaro-Winkler >= 0.85, or the same
    Metaphone code (Philips ~ Filips, Wardlaw ~ Wardlavv). Only for family names: the
    people it could confuse (relatives) share the family name anyway, and a merge still
    needs the given name and the date of birth."""
    shorter = min(len(a), len(b))
    if shorter < 3:
        return False
    edits = DamerauLevenshtein.distance(a, b, score_cutoff=2)
    if edits <= 1 or (shorter >= 5 and edits <= 2):
        return True
    if JaroWinkler.similarity(a, b) >= 0.85:
        return True
    if not (a.isascii() and b.isascii()):
        return False
    code = _metaphone(a)
    return len(code) >= 2 and code == _metaphone(b)


_metaphone: Final = functools.lru_cache(maxsize=65_536)(jellyfish.metaphone)
"""Metaphone of a folded name; names repeat, so each is coded once."""


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


def location_level_of(pa: str, address_a: str, pb: str, address_b: str) -> str | None:
    """Postcode and first address line judged together, since they are not independent.

    Postcodes normalised ('EH12AB', '' when missing), addresses folded ('' when missing).
    """
    same_address = bool(address_a and address_b) and (
        address_a == address_b or fuzz.token_set_ratio(address_a, address_b) >= 90
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


def location_level(a: Features, b: Features) -> str | None:
    """`location_level_of` for two records' features."""
    return location_level_of(a.postcode, a.address, b.postcode, b.address)


def _probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    if weight < -60:
        return 0.0
    odds = 2.0**weight
    return odds / (1.0 + odds)


_AGREE: Final = frozenset({"exact", "alias", "part"})


def _exact_bf(model: MatchModel, comparison: str, share: float | None) -> float:
    """Bayes factor of exact agreement, from the name's own frequency when it is known.

    Splink's term-frequency adjustment: u of exact agreement is the name's frequency.
    """
    if share is None:
        return model.bayes_factors[comparison, "exact"]
    return math.log2(model.m_exact[comparison] / max(share, NAME_SHARE_FLOOR))


def _names(
    model: MatchModel,
    a: Features,
    b: Features,
    given_share: float | None,
    family_share: float | None,
) -> tuple[float, list[tuple[str, str, float]], str | None, str | None]:
    """Name evidence in the better of the two orders (given/family as written, or swapped).

    A swap is not a trained comparison: it only lets crossed names be compared as names,
    and is named in the evidence (with no weight of its own).
    """
    best: tuple[float, list[tuple[str, str, float]], str | None, str | None] | None = None
    orders = (
        ("as_given", (a.given, a.given_tokens), (a.family, a.family_tokens)),
        ("swapped", (a.family, a.family_tokens), (a.given, a.given_tokens)),
    )
    factors = model.bayes_factors
    for order, given_a, family_a in orders:
        given = given_level(given_a, (b.given, b.given_tokens))
        family = family_level(family_a, (b.family, b.family_tokens))
        if order == "swapped" and (given is None or family is None):
            continue  # a swap is only evidence when both names line up crossed
        evidence = []
        if given is not None:
            bf = (
                _exact_bf(model, "given_name", given_share)
                if given == "exact"
                else factors["given_name", given]
            )
            evidence.append(("given_name", given, bf))
        if family is not None:
            bf = (
                _exact_bf(model, "family_name", family_share)
                if family == "exact"
                else factors["family_name", family]
            )
            evidence.append(("family_name", family, bf))
        total = sum(item[2] for item in evidence)
        if order == "swapped":
            evidence.append(("name_order", "swapped", 0.0))
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


_GIVEN_AGREES: Final = frozenset({"exact", "alias", "fuzzy"})
_FAMILY_AGREES: Final = frozenset({"exact", "part", "fuzzy", "similar"})
_HOME: Final = frozenset({"same_address", "same_postcode"})


def _enough_for_a_merge(
    given: str | None, family: str | None, dob: str | None, location: str | None
) -> bool:
    """Both names and the date of birth agree at least approximately (a date two digits
    apart only with the very same given name, the family name and the home: a spouse
    whose name is a variant of the other's, Sean and Shaun, is born apart); or the family
    name is missing and the given name, the date of birth and the home agree exactly.

    Never with the given name missing: it is all that tells twins apart."""
    if given in _GIVEN_AGREES and family in _FAMILY_AGREES:
        if dob in ("exact", "typo"):
            return True
        return dob == "near" and given == "exact" and family in _AGREE and location in _HOME
    return (
        family is None
        and given == "exact"
        and dob == "exact"
        and location in (*_HOME, "address_in_district")
    )


def compare_features(
    a: Features,
    b: Features,
    given_share: float | None = None,
    family_share: float | None = None,
    model: MatchModel | None = None,
) -> MatchResult:
    """Decide about two normalised records; see `compare`.

    given_share and family_share are the frequencies of b's names among the people known
    (a `Matcher` supplies them); without them the model's average u probabilities apply.
    model defaults to `default_model()`.
    """
    identifier = _identifier(a, b)
    if identifier is not None and identifier[1] == "equal":
        return MatchResult("MATCH", 1.0, DETERMINISTIC_WEIGHT, (identifier + (0.0,),))
    model = model or default_model()

    _, evidence, given, family = _names(model, a, b, given_share, family_share)
    dob = dob_level(a.dob, b.dob)
    if dob is not None:
        evidence.append(("date_of_birth", dob, model.bayes_factors["date_of_birth", dob]))
    location = location_level(a, b)
    if location is not None:
        evidence.append(("location", location, model.bayes_factors["location", location]))
    weight = model.prior_log2_odds + sum(item[2] for item in evidence)

    outcome: Outcome
    if weight >= model.match_weight:
        outcome = "MATCH"
    elif weight < model.no_match_weight:
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
    elif given == "different" and dob in ("different", "near"):
        rules.append("given_and_dob_differ")  # a spouse or sibling at the same address
        outcome = "NO_MATCH"
    elif dob == "different" and abs(a.dob.year - b.dob.year) >= GENERATION_YEARS:  # type: ignore[union-attr]
        rules.append("generation_apart")  # a parent and child of the same name, say
        outcome = "NO_MATCH"
    elif (
        outcome == "MATCH" and dob == "near" and abs(a.dob.year - b.dob.year) >= GENERATION_YEARS  # type: ignore[union-attr]
    ):
        # Two digits apart and a generation: a slip in the decade and the day, or a
        # same-name parent at the address. Only a person can tell.
        rules.append("years_apart")
        outcome = "REVIEW"
    elif outcome == "MATCH" and not _enough_for_a_merge(given, family, dob, location):
        rules.append("needs_name_and_dob")  # never merge on address and one attribute alone
        outcome = "REVIEW"
    evidence.extend(("rule", rule, 0.0) for rule in rules)
    evidence.append(("model", model.version, 0.0))
    return MatchResult(outcome, _probability(weight), round(weight, 3), tuple(evidence))


def compare(a: PersonRecord, b: PersonRecord, model: MatchModel | None = None) -> MatchResult:
    """Decide whether two records are the same person: MATCH, NO_MATCH or REVIEW.

    Equal CHI (or NHS) numbers match outright; two different ones never match. Otherwise
    the trained Fellegi-Sunter weight decides, within the guards described in the module
    doc. Pure and free of I/O once the model is read, so that it can run in a stream agent.
    """
    return compare_features(features(a), features(b), model=model)
