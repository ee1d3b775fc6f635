"""Run the matcher over a labelled synthetic population and measure it.

Definitions (a query is one noisy record; a listed query is about someone on the list):

- auto-merge: the matcher's best candidate came back MATCH;
- TP: an auto-merge to the right person; FP: an auto-merge to anyone else;
- precision = TP / (TP + FP);
- recall = TP / listed queries (a review or a miss counts against recall);
- FN = listed queries - TP;
- review rate = queries answered REVIEW / all queries;
- recall lost to blocking = listed queries whose person no blocking rule proposed, over
  listed queries (the rest of FN is lost to scoring: reviews and wrong no-matches).

Two populations: A (`accord.synthetic.population`, written beside the matcher) and B
(`accord.synthetic.corrupted`, written apart from it, with its own corruption model).
"""

from __future__ import annotations

import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from accord.matching.matcher import BLOCKING_RULES, Matcher
from accord.matching.model import MatchModel, default_model
from accord.synthetic.corrupted import generate_corrupted_population
from accord.synthetic.population import Population, generate_population

__all__ = [
    "POPULATIONS",
    "RELATIVE_KINDS",
    "Counts",
    "Evaluation",
    "evaluate",
    "generate",
    "run_evaluation",
]

POPULATIONS: Final = {"A": generate_population, "B": generate_corrupted_population}
"""Population generators by name: A written beside the matcher, B apart from it."""

RELATIVE_KINDS: Final = ("twin", "spouse", "same_name_relative")
"""Queries about someone's relative at their address: none of these may ever merge."""


@dataclass
class Counts:
    """Outcome counts over a set of queries, and the metrics defined in the module doc."""

    queries: int = 0
    listed: int = 0
    tp: int = 0
    fp: int = 0
    reviews: int = 0
    no_match: int = 0

    @property
    def fn(self) -> int:
        return self.listed - self.tp

    @property
    def precision(self) -> float:
        merges = self.tp + self.fp
        return self.tp / merges if merges else 1.0

    @property
    def recall(self) -> float:
        return self.tp / self.listed if self.listed else 1.0

    @property
    def review_rate(self) -> float:
        return self.reviews / self.queries if self.queries else 0.0


@dataclass
class Evaluation:
    """The counts overall, for queries without CHI, and per noise kind; timings and memory."""

    people: int
    population: str = "A"
    overall: Counts = field(default_factory=Counts)
    without_identifier: Counts = field(default_factory=Counts)
    by_kind: dict[str, Counts] = field(default_factory=dict)
    build_seconds: float = 0.0
    query_seconds: float = 0.0
    query_cpu_seconds: float = 0.0
    index_memory_mb: float | None = None
    blocking_missed: int = 0
    pairs_by_rule: dict[str, int] = field(default_factory=dict)
    pairs_union: int = 0

    @property
    def recall_lost_to_blocking(self) -> float:
        """Share of listed queries whose person no blocking rule proposed."""
        listed = self.overall.listed
        return self.blocking_missed / listed if listed else 0.0

    @property
    def recall_lost_to_scoring(self) -> float:
        """Share of listed queries proposed by blocking but not merged to their person."""
        return 1.0 - self.overall.recall - self.recall_lost_to_blocking

    @property
    def relatives_merged(self) -> int:
        """Twins, spouses and same-name relatives merged with someone (must be 0)."""
        return sum(self.by_kind[k].fp for k in RELATIVE_KINDS if k in self.by_kind)

    @property
    def ms_per_query(self) -> float:
        """Wall-clock time per query (what a caller waits, on a loaded machine too)."""
        return 1000 * self.query_seconds / self.overall.queries if self.overall.queries else 0.0

    @property
    def cpu_ms_per_query(self) -> float:
        """Processor time per query (steadier than wall-clock on a shared machine)."""
        queries = self.overall.queries
        return 1000 * self.query_cpu_seconds / queries if queries else 0.0


def _tally(counts: Counts, listed: bool, outcome: str, right: bool) -> None:
    counts.queries += 1
    counts.listed += listed
    if outcome == "MATCH":
        if right:
            counts.tp += 1
        else:
            counts.fp += 1
    elif outcome == "REVIEW":
        counts.reviews += 1
    else:
        counts.no_match += 1


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def evaluate(
    population: Population, name: str = "A", model: MatchModel | None = None
) -> Evaluation:
    """Index the list, answer every query, and count outcomes against the labels."""
    result = Evaluation(people=len(population.people), population=name)
    matcher = Matcher((model or default_model()).for_list(len(population.people)))
    rss_before = _max_rss_mb()
    started = time.perf_counter()
    for person_id, record in population.people.items():
        matcher.add(person_id, record)
    result.build_seconds = time.perf_counter() - started
    grown = _max_rss_mb() - rss_before
    result.index_memory_mb = grown if grown > 0 else None

    started, cpu = time.perf_counter(), time.process_time()
    answers = [matcher.best(query.record) for query in population.queries]
    result.query_seconds = time.perf_counter() - started
    result.query_cpu_seconds = time.process_time() - cpu

    for query, (person_id, match) in zip(population.queries, answers, strict=True):
        listed = query.person_id is not None
        right = listed and person_id == query.person_id
        _tally(result.overall, listed, match.outcome, right)
        if "with_chi" not in query.kinds:
            _tally(result.without_identifier, listed, match.outcome, right)
        for kind in query.kinds:
            _tally(result.by_kind.setdefault(kind, Counts()), listed, match.outcome, right)

    # Blocking on its own (after the timing): what each rule proposes, and who it misses.
    result.pairs_by_rule = dict.fromkeys(BLOCKING_RULES.values(), 0)
    for query in population.queries:
        by_rule = matcher.candidates_by_rule(query.record)
        union: set[str] = set()
        for rule, ids in by_rule.items():
            result.pairs_by_rule[rule] += len(ids)
            union |= ids
        result.pairs_union += len(union)
        if query.person_id is not None and "with_chi" not in query.kinds:
            result.blocking_missed += query.person_id not in union
    return result


def generate(name: str, people: int, queries: int, seed: int) -> Population:
    """Population `name` ('A' or 'B') of `people` listed and `queries` labelled queries."""
    return POPULATIONS[name](people, queries, seed=seed)


def run_evaluation(
    people: int, queries: int, seed: int, population: str = "A", model: MatchModel | None = None
) -> Evaluation:
    """Generate a population with `seed` and evaluate the matcher on it."""
    return evaluate(generate(population, people, queries, seed), population, model)


def kinds_by_count(evaluation: Evaluation) -> list[tuple[str, Counts]]:
    """Noise kinds, most frequent first (for the report)."""
    order = Counter({kind: counts.queries for kind, counts in evaluation.by_kind.items()})
    return [(kind, evaluation.by_kind[kind]) for kind, _ in order.most_common()]
