"""Training the matching model from the records themselves, with splink on DuckDB.

What is learnt, and how (the approach splink documents):

- u (how often two different people land at each level) by random sampling of record
  pairs, almost all of which are non-matches;
- m (how often the same person does) by expectation maximisation over blocked pairs:
  once over pairs born on the same day (learning the names and location) and once over
  pairs at the same postcode (learning the date of birth); no labels are used;
- the prior (the probability that two random records match) from deterministic rules
  (same names and date of birth) with an assumed recall;
- exact agreement on a name is term-frequency adjusted at scoring time (splink's
  adjustment: the name's own frequency is its u).

The comparison levels are computed by the scorer's own functions (`accord.matching.model`),
registered as DuckDB functions, so the levels splink counts are the levels the worker
scores. The thresholds are then chosen from the trained model, not by hand: the match
weight is the lowest at which the model's own expected precision of automatic merges,
over every query's best candidate, still meets the precision target; the no-match
weight is the lowest that keeps the expected review share within the review budget.

The model file holds the comparison levels with their m and u, the prior, the thresholds
and how they were chosen, and the data trained on as counts only -- never a record.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from accord.matching.model import (
    COMPARISONS,
    MODEL_FORMAT,
    TERM_FREQUENCY_COMPARISONS,
    MatchModel,
    dob_level,
    family_level,
    given_level,
    location_level_of,
)
from accord.matching.normalise import Features, PersonRecord, features

__all__ = [
    "PRECISION_TARGET",
    "REVIEW_BUDGET",
    "TrainingError",
    "choose_thresholds",
    "train_model",
    "write_model",
]

PRECISION_TARGET: Final = 0.999
"""Expected precision of automatic merges the match threshold is chosen to meet."""

REVIEW_BUDGET: Final = 0.03
"""Largest expected share of queries sent to review the no-match threshold allows."""

REVIEW_FLOOR: Final = 0.01
"""Pairs the model gives less than this probability are not worth a reviewer's time."""

U_MAX_PAIRS: Final = 2_000_000
"""Record pairs sampled for the u probabilities."""

PRIOR_RECALL: Final = 0.7
"""Assumed recall of the exact-names-and-date rule used to estimate the prior."""


class TrainingError(RuntimeError):
    """Training could not produce a usable model (too few records, no candidates)."""


# --- the levels, as DuckDB functions over normalised columns ---------------------------


def _tokens(text: str) -> tuple[str, tuple[str, ...]]:
    parts = tuple(text.split())
    return "".join(parts), parts


@functools.lru_cache(maxsize=65_536)  # a CASE asks once per level
def _given(a: str, b: str) -> str | None:
    return given_level(_tokens(a), _tokens(b))


@functools.lru_cache(maxsize=65_536)  # a CASE asks once per level
def _family(a: str, b: str) -> str | None:
    return family_level(_tokens(a), _tokens(b))


@functools.lru_cache(maxsize=65_536)  # a CASE asks once per level
def _dob(a: str, b: str) -> str | None:
    from datetime import date

    return dob_level(date.fromisoformat(a), date.fromisoformat(b))


@functools.lru_cache(maxsize=65_536)  # a CASE asks once per level
def _location(pa: str | None, aa: str | None, pb: str | None, ab: str | None) -> str | None:
    return location_level_of(pa or "", aa or "", pb or "", ab or "")


def _register_levels(con: Any) -> None:
    from duckdb import sqltypes

    text = sqltypes.VARCHAR
    con.create_function("accord_given", _given, [text, text], text, side_effects=False)
    con.create_function("accord_family", _family, [text, text], text, side_effects=False)
    con.create_function("accord_dob", _dob, [text, text], text, side_effects=False)
    con.create_function(
        "accord_location",
        _location,
        [text, text, text, text],
        text,
        null_handling="special",
        side_effects=False,
    )


_LEVEL_SQL: Final[dict[str, str]] = {
    "given_name": "accord_given(given_l, given_r)",
    "family_name": "accord_family(family_l, family_r)",
    "date_of_birth": "accord_dob(dob_l, dob_r)",
    "location": "accord_location(postcode_l, address_l, postcode_r, address_r)",
}

_LEVEL_FUNCTIONS: Final = {
    "given_name": "accord.matching.model.given_level",
    "family_name": "accord.matching.model.family_level",
    "date_of_birth": "accord.matching.model.dob_level",
    "location": "accord.matching.model.location_level_of",
}

_TF_COLUMN: Final = {"given_name": "given_key", "family_name": "family_key"}


def _comparison(name: str) -> dict[str, Any]:
    expr = _LEVEL_SQL[name]
    labels = COMPARISONS[name]
    levels: list[dict[str, Any]] = [
        {"sql_condition": f"{expr} IS NULL", "label_for_charts": "missing", "is_null_level": True}
    ]
    for label in labels[:-1]:
        level: dict[str, Any] = {
            "sql_condition": f"{expr} = '{label}'",
            "label_for_charts": label,
        }
        if label == labels[0] and name in TERM_FREQUENCY_COMPARISONS:
            level["tf_adjustment_column"] = _TF_COLUMN[name]
            level["tf_adjustment_weight"] = 1.0
        levels.append(level)
    levels.append({"sql_condition": "ELSE", "label_for_charts": labels[-1]})
    return {"output_column_name": name, "comparison_levels": levels}


def _row(unique_id: str, f: Features) -> dict[str, Any]:
    def blank(value: str) -> str | None:
        return value or None

    return {
        "unique_id": unique_id,
        "given": blank(" ".join(f.given_tokens)),
        "given_key": blank(f.given),
        "family": blank(" ".join(f.family_tokens)),
        "family_key": blank(f.family),
        "dob": f.dob.isoformat() if f.dob else None,
        "postcode": blank(f.postcode),
        "address": blank(f.address),
    }


def _table(rows: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    columns = ("unique_id", "given", "given_key", "family", "family_key", "dob", "postcode")
    names = (*columns, "address")
    return pa.table({name: pa.array([r[name] for r in rows], type=pa.string()) for name in names})


def _missing(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    fields = ("given", "family", "dob", "postcode", "address")
    return {name: sum(1 for r in rows if r[name] is None) for name in fields}


@dataclass(frozen=True)
class _Trained:
    comparisons: dict[str, Any]
    probability_two_random_records_match: float
    em_sessions: list[dict[str, Any]]


def _run_splink(
    list_rows: list[dict[str, Any]],
    request_rows: list[dict[str, Any]],
    seed: int,
    u_max_pairs: int,
) -> _Trained:
    import logging

    import duckdb
    from splink import DuckDBAPI, Linker, block_on

    logging.getLogger("splink").setLevel(logging.ERROR)
    con = duckdb.connect()
    _register_levels(con)
    db_api = DuckDBAPI(connection=con)
    settings = {
        "link_type": "link_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": 1e-4,
        "comparisons": [_comparison(name) for name in COMPARISONS],
        "blocking_rules_to_generate_predictions": [],
        "retain_intermediate_calculation_columns": False,
        "retain_matching_columns": False,
    }
    tables = [
        db_api.register(_table(list_rows), table_name="listed"),
        db_api.register(_table(request_rows), table_name="requests"),
    ]
    linker = Linker(tables, settings, log_level=logging.WARNING)
    deterministic = "l.given_key = r.given_key and l.family_key = r.family_key and l.dob = r.dob"
    linker.training.estimate_probability_two_random_records_match(
        [deterministic], recall=PRIOR_RECALL
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
    sessions = []
    for rule in ("dob", "postcode"):
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on(rule), estimate_without_term_frequencies=True
        )
        sessions.append({"blocking_rule": f"l.{rule} = r.{rule}"})
    saved = linker.misc.save_model_to_json()
    con.close()
    return _Trained(
        comparisons={c["output_column_name"]: c for c in saved["comparisons"]},
        probability_two_random_records_match=float(saved["probability_two_random_records_match"]),
        em_sessions=sessions,
    )


def _levels(trained: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """m and u per level, as splink estimated them; a level never seen is an error."""
    out = []
    for level in trained["comparison_levels"]:
        if level.get("is_null_level"):
            continue
        label = level["label_for_charts"]
        m, u = level.get("m_probability"), level.get("u_probability")
        # A level seen among matches but never among the sampled non-matches (or the
        # other way round) would be infinitely strong evidence: floor both at 1e-6. A
        # level never seen at all in the matches carries no weight (m = u), and says so.
        entry: dict[str, Any] = {"label": label, "tf_adjusted": "tf_adjustment_column" in level}
        if m is None or u is None:
            known = m if u is None else u
            value = max(float(known), 1e-6) if known is not None else 1e-6
            entry.update(m=value, u=value, trained=False)
            entry["note"] = "not observed in training: scored as no evidence (m = u)"
        else:
            entry.update(m=max(float(m), 1e-6), u=max(float(u), 1e-6), trained=True)
        out.append(entry)
    # A partial agreement is never weaker evidence than clear disagreement (the same
    # sector is not further than another town): a level training saw too rarely among
    # matches to say more (m floored near 0) is scored as the disagreement level.
    last = out[-1]
    floor = last["m"] / last["u"]
    for level in out[:-1]:
        if level["m"] / level["u"] < floor:
            level["m"] = min(1.0, level["u"] * floor)
            level["note"] = (
                "fewer matches here than the model can tell from none: scored as "
                f"{last['label']} (a partial agreement is no weaker evidence)"
            )
    for level in out:
        level["bayes_factor_log2"] = round(math.log2(level["m"] / level["u"]), 4)
    return out


def _version(parameters: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()
    return f"fs-{digest[:12]}"


def choose_thresholds(
    model: MatchModel,
    listed: Mapping[str, PersonRecord],
    requests: Iterable[PersonRecord],
    precision_target: float = PRECISION_TARGET,
    review_budget: float = REVIEW_BUDGET,
) -> dict[str, Any]:
    """Match and no-match weights from the model's own probabilities (no labels used).

    Each request's best candidate (without its CHI) is scored with thresholds out of the
    way; sorted by weight, the match weight is the lowest at which the mean probability of
    every pair at or above it (the expected precision of automatic merges) is still at
    least `precision_target`, and the no-match weight the lowest that keeps the share of
    requests between the two within `review_budget` (and no pair below `REVIEW_FLOOR`).
    """
    from dataclasses import replace

    from accord.matching.matcher import Matcher

    open_model = replace(model, match_weight=math.inf, no_match_weight=-math.inf)
    matcher = Matcher(open_model)
    for person_id, record in listed.items():
        matcher.add(person_id, record)
    weights = []
    total = 0
    for record in requests:
        total += 1
        best, result = matcher.best(replace(record, chi_number=None, nhs_number=None))
        if best is not None:
            weights.append(result.weight)
    if not weights:
        raise TrainingError("no request had a blocked candidate: nothing to choose thresholds on")
    weights.sort(reverse=True)
    expected_fp = 0.0
    match_weight = weights[0]
    merges = 0
    for i, weight in enumerate(weights):
        p = 2.0**weight / (1.0 + 2.0**weight) if weight < 60 else 1.0
        expected_fp += 1.0 - p
        if expected_fp / (i + 1) > 1.0 - precision_target:
            break
        match_weight, merges = weight, i + 1
    below = weights[merges:]
    floor = math.log2(REVIEW_FLOOR / (1 - REVIEW_FLOOR))
    budget = int(review_budget * total)
    reviewed = [w for w in below[:budget] if w >= floor]
    no_match_weight = reviewed[-1] if reviewed else match_weight
    expected_matches_missed = sum(2.0**w / (1.0 + 2.0**w) for w in below[len(reviewed) :] if w < 60)
    expected_fp_at = sum(1.0 - 2.0**w / (1.0 + 2.0**w) for w in weights[:merges] if w < 60)
    return {
        "match_weight": round(match_weight, 3),
        "no_match_weight": round(no_match_weight, 3),
        "precision_target": precision_target,
        "review_budget": review_budget,
        "chosen_by": (
            "the lowest match weight at which the model's expected precision of automatic "
            "merges over the training requests' best candidates meets precision_target; the "
            "lowest no-match weight keeping the expected review share within review_budget"
        ),
        "expected_on_training_requests": {
            "requests": total,
            "with_a_candidate": len(weights),
            "automatic_merges": merges,
            "expected_precision": round(1 - expected_fp_at / merges, 6) if merges else None,
            "reviews": len(reviewed),
            "expected_matches_below_review": round(expected_matches_missed, 1),
        },
    }


def train_model(
    listed: Mapping[str, PersonRecord],
    requests: Sequence[PersonRecord],
    *,
    seed: int = 1,
    source: str = "records given",
    precision_target: float = PRECISION_TARGET,
    review_budget: float = REVIEW_BUDGET,
    u_max_pairs: int = U_MAX_PAIRS,
) -> dict[str, Any]:
    """Train on a list and requests to link to it; the model file's content, as a dict."""
    if len(listed) < 100 or len(requests) < 100:
        raise TrainingError(
            f"too few records to train on ({len(listed)} listed, {len(requests)} requests; "
            "at least 100 of each)"
        )
    list_rows = [_row(f"L{i}", features(r)) for i, r in enumerate(listed.values())]
    request_rows = [_row(f"R{i}", features(r)) for i, r in enumerate(requests)]
    trained = _run_splink(list_rows, request_rows, seed, u_max_pairs)
    lam = trained.probability_two_random_records_match
    comparisons = {
        name: {"levels": _levels(trained.comparisons[name], name), "level_function": fn}
        for name, fn in _LEVEL_FUNCTIONS.items()
    }
    # The prior of a query against one listed person: splink's lambda for the link job.
    prior = {
        "probability_two_random_records_match": lam,
        "log2_odds": round(math.log2(lam / (1 - lam)), 4),
    }
    parameters = {"comparisons": comparisons, "prior": prior}
    draft = {
        "format": MODEL_FORMAT,
        "version": _version(parameters),
        **parameters,
        "thresholds": {"match_weight": math.inf, "no_match_weight": -math.inf},
    }
    model = MatchModel.from_dict(draft)
    thresholds = choose_thresholds(model, listed, requests, precision_target, review_budget)
    parameters["thresholds"] = {k: thresholds[k] for k in ("match_weight", "no_match_weight")}
    return {
        "format": MODEL_FORMAT,
        "version": _version(parameters),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "trained_with": {
            "library": f"splink {metadata.version('splink')}",
            "backend": f"duckdb {metadata.version('duckdb')}",
            "u": f"random sampling of up to {u_max_pairs} record pairs (seed {seed})",
            "m": [
                f"expectation maximisation over pairs blocked on {s['blocking_rule']}"
                for s in trained.em_sessions
            ],
            "prior": (
                "deterministic rule (same given name, family name and date of birth) with "
                f"assumed recall {PRIOR_RECALL}"
            ),
            "term_frequency": (
                "exact given and family names: u is the name's frequency among the people "
                "known to the scorer (splink's term-frequency adjustment)"
            ),
        },
        "training_data": {
            "source": source,
            "listed_records": len(list_rows),
            "request_records": len(request_rows),
            "missing_in_listed": _missing(list_rows),
            "missing_in_requests": _missing(request_rows),
        },
        "prior": prior,
        "comparisons": comparisons,
        "thresholds": thresholds,
    }


def write_model(model: dict[str, Any], path: Path) -> None:
    """Write a model file: sorted, indented JSON, so a change reviews as a readable diff."""
    MatchModel.from_dict(model, source=str(path))  # never write a file the worker refuses
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model, indent=2, sort_keys=True) + "\n", encoding="utf-8")
