"""Run the matcher over a labelled synthetic population and measure it.

Definitions (a query is one noisy record; a listed query is about someone on the list):

- auto-merge: the matcher's best candidate came back MATCH;
- TP: an auto-merge to the right person; FP: an auto-merge to anyone else;
- precision = TP / (TP + FP);
- recall = TP / listed queries (a review or a miss counts against recall);
- FN = listed queries - TP;
- review rate = queries answered REVIEW / all queries.
"""

from __future__ import annotations

import resource
import time
from collections import Counter
from dataclasses import dataclass, field

from accord.matching.matcher import Matcher
from accord.synthetic.population import Population, generate_population

__all__ = ["Counts", "Evaluation", "evaluate", "run_evaluation"]


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
    overall: Counts = field(default_factory=Counts)
    without_identifier: Counts = field(default_factory=Counts)
    by_kind: dict[str, Counts] = field(default_factory=dict)
    build_seconds: float = 0.0
    query_seconds: float = 0.0
    index_memory_mb: float | None = None

    @property
    def ms_per_query(self) -> float:
        return 1000 * self.query_seconds / self.overall.queries if self.overall.queries else 0.0


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


def evaluate(population: Population) -> Evaluation:
    """Index the list, answer every query, and count outcomes against the labels."""
    result = Evaluation(people=len(population.people))
    rss_before = _max_rss_mb()
    started = time.perf_counter()
    matcher = Matcher()
    for person_id, record in population.people.items():
        matcher.add(person_id, record)
    result.build_seconds = time.perf_counter() - started
    grown = _max_rss_mb() - rss_before
    result.index_memory_mb = grown if grown > 0 else None

    started = time.perf_counter()
    answers = [matcher.best(query.record) for query in population.queries]
    result.query_seconds = time.perf_counter() - started

    for query, (person_id, match) in zip(population.queries, answers, strict=True):
        listed = query.person_id is not None
        right = listed and person_id == query.person_id
        _tally(result.overall, listed, match.outcome, right)
        if "with_chi" not in query.kinds:
            _tally(result.without_identifier, listed, match.outcome, right)
        for kind in query.kinds:
            _tally(result.by_kind.setdefault(kind, Counts()), listed, match.outcome, right)
    return result


def run_evaluation(people: int, queries: int, seed: int) -> Evaluation:
    """Generate a population with `seed` and evaluate the matcher on it."""
    return evaluate(generate_population(people, queries, seed=seed))


def kinds_by_count(evaluation: Evaluation) -> list[tuple[str, Counts]]:
    """Noise kinds, most frequent first (for the report)."""
    order = Counter({kind: counts.queries for kind, counts in evaluation.by_kind.items()})
    return [(kind, evaluation.by_kind[kind]) for kind, _ in order.most_common()]
