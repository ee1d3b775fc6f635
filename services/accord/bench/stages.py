"""Where an event's time goes between publication and the list: pure computations.

For each event of a latency run the bench collects broker timestamps (ms) of:

- its partner record (`partner`), keyed by its event id;
- its first record on each of the worker's stage topics: stage records are JSON envelopes
  carrying `event_id` (and, once the person is known, `person_key`), matched to the event
  by that id; which topics those are is the worker's own list (`processes.stage_topics`);
- the first `hub.cases` record about its person at or after its last stage record (`case`);
- the first audited decision about that person at or after the case record and before the
  person's next case record (`decision`): a case version no decision followed has none;
- the first record on any share topic about that person at or after the decision and
  before the person's next decision (`share`; a tombstone is a change of the list too).

An event's timeline is the points it has, in that order; a step is a pair of consecutive
points, so an event that skips a stage adds to the step from the stage before it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from accord.bench.measure import percentile

PARTNER, CASE, DECISION, SHARE = "partner", "case", "decision", "share"
QUANTILES = (50, 95, 99)


def envelope_ids(value: bytes | None) -> tuple[str | None, str | None]:
    """(event_id, person_key) of a stage record; None for what it does not carry (notes of
    who owns a request, erasures, anything that is not a JSON object)."""
    if not value:
        return None, None
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(envelope, dict):
        return None, None
    event_id, person = envelope.get("event_id"), envelope.get("person_key")
    return (
        event_id if isinstance(event_id, str) else None,
        person if isinstance(person, str) else None,
    )


@dataclass
class StageRecords:
    """The first record of each event on one stage topic, and every person it was sent to
    there: a request for a provisional person already merged is forwarded to the person
    it was merged into, so its case is the second person's."""

    name: str
    first_ms: dict[str, int] = field(default_factory=dict)
    sent_to: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def add(
        self,
        value: bytes | None,
        timestamp_ms: int,
        wanted: set[str] | None = None,
        person_key: str | None = None,
    ) -> None:
        """`person_key`: the record's key on a topic keyed by person (`hub.person-events`),
        which names the person the record is for; a forwarded envelope still names the
        person it was first sent to."""
        event_id, person = envelope_ids(value)
        person = person_key or person
        if event_id is None or (wanted is not None and event_id not in wanted):
            return
        if event_id not in self.first_ms or timestamp_ms < self.first_ms[event_id]:
            self.first_ms[event_id] = timestamp_ms
        if person is not None:
            self.sent_to.setdefault(event_id, []).append((timestamp_ms, person))

    def persons(self, event_id: str) -> list[tuple[int, str]]:
        """(when, person) of each record of the event that named a person, earliest first."""
        return sorted(self.sent_to.get(event_id) or ())


class KeyTimes:
    """Sorted broker timestamps of the records about each key (person) of a topic."""

    def __init__(self) -> None:
        self._times: dict[str, list[int]] = defaultdict(list)
        self._sorted = True

    def add(self, key: str, timestamp_ms: int) -> None:
        self._times[key].append(timestamp_ms)
        self._sorted = False

    def _ready(self) -> None:
        if not self._sorted:
            for times in self._times.values():
                times.sort()
            self._sorted = True

    def first_at_or_after(self, key: str, at_ms: int, before_ms: int | None = None) -> int | None:
        """The first time at or after `at_ms` (and before `before_ms`, if given)."""
        self._ready()
        times = self._times.get(key)
        if not times:
            return None
        i = bisect.bisect_left(times, at_ms)
        if i == len(times) or (before_ms is not None and times[i] >= before_ms):
            return None
        return times[i]

    def next_after(self, key: str, at_ms: int) -> int | None:
        """The first time strictly after `at_ms`."""
        self._ready()
        times = self._times.get(key) or []
        i = bisect.bisect_right(times, at_ms)
        return times[i] if i < len(times) else None


def timelines(
    published_ms: dict[str, int],
    stages: Sequence[StageRecords],
    cases: KeyTimes,
    decisions: KeyTimes,
    shares: KeyTimes,
) -> dict[str, list[tuple[str, int]]]:
    """Each published event's points in flow order: (point name, broker timestamp ms)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for event_id, at in published_ms.items():
        points = [(PARTNER, at)]
        persons: list[tuple[int, str]] = []
        for stage in stages:
            if (t := stage.first_ms.get(event_id)) is not None:
                points.append((stage.name, t))
                persons = stage.persons(event_id) or persons
        if persons:
            last = points[-1][1]
            # The first case of any person the event was sent to, after it was sent there.
            found = [
                (case_at, person)
                for sent, person in persons
                if (case_at := cases.first_at_or_after(person, max(last, sent))) is not None
            ]
            if found:
                case_at, person = min(found)
                points.append((CASE, case_at))
                bound = cases.next_after(person, case_at)
                decided = decisions.first_at_or_after(person, case_at, bound)
            else:
                person = persons[-1][1]
                decided = decisions.first_at_or_after(person, last)
            if decided is not None:
                points.append((DECISION, decided))
                bound = decisions.next_after(person, decided)
                if (shared := shares.first_at_or_after(person, decided, bound)) is not None:
                    points.append((SHARE, shared))
        out[event_id] = points
    return out


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Samples and the p50/p95/p99 (nearest rank) of `values`, in ms."""
    return {"samples": len(values), **{f"p{q}_ms": percentile(values, q / 100) for q in QUANTILES}}


def order_of(stage_names: Iterable[str]) -> list[str]:
    return [PARTNER, *stage_names, CASE, DECISION, SHARE]


def steps(
    lines: dict[str, list[tuple[str, int]]], stage_names: Sequence[str]
) -> dict[str, dict[str, float | int | None]]:
    """Per step (consecutive points, "a → b"), in flow order: samples and percentiles."""
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for points in lines.values():
        for (a, at), (b, bt) in zip(points, points[1:], strict=False):
            durations[(a, b)].append(float(max(0, bt - at)))
    rank = {name: n for n, name in enumerate(order_of(stage_names))}
    ordered = sorted(durations, key=lambda pair: (rank.get(pair[1], 99), rank.get(pair[0], 99)))
    return {f"{a} → {b}": summary(durations[(a, b)]) for a, b in ordered}


def end_to_end(
    lines: dict[str, list[tuple[str, int]]],
) -> dict[str, dict[str, float | int | None]]:
    """From publication to the case record, the decision and the list."""
    totals: dict[str, list[float]] = {CASE: [], DECISION: [], SHARE: []}
    for points in lines.values():
        start = points[0][1]
        for name, at in points[1:]:
            if name in totals:
                totals[name].append(float(max(0, at - start)))
    return {f"{PARTNER} → {name}": summary(values) for name, values in totals.items()}


def by_dataset(
    lines: dict[str, list[tuple[str, int]]], datasets: dict[str, str]
) -> dict[str, dict[str, float | int | None]]:
    """Publication to the list, per dataset of the events (an urgent request matters most)."""
    values: dict[str, list[float]] = defaultdict(list)
    for event_id, points in lines.items():
        if points[-1][0] == SHARE:
            values[datasets.get(event_id, "?")].append(float(max(0, points[-1][1] - points[0][1])))
    return {name: summary(values[name]) for name in sorted(values)}


def short_of_case(
    lines: dict[str, list[tuple[str, int]]], datasets: dict[str, str], stage_names: Sequence[str]
) -> list[dict[str, str]]:
    """The events that reached no case record: their id, dataset and the last point they
    reached (event ids are the partners' UUIDs, never personal data)."""
    points_before_case = {PARTNER, *stage_names}
    return [
        {"event_id": event_id, "dataset": datasets.get(event_id, "?"), "last": points[-1][0]}
        for event_id, points in sorted(lines.items())
        if points[-1][0] in points_before_case
    ]


def short_name(topic: str, prefix: str) -> str:
    """A stage topic without the run's prefix (`hub.identity`)."""
    return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic


def latency_figures(
    published_ms: dict[str, int],
    datasets: dict[str, str],
    stages: Sequence[StageRecords],
    cases: KeyTimes,
    decisions: KeyTimes,
    shares: KeyTimes,
) -> dict[str, Any]:
    lines = timelines(published_ms, stages, cases, decisions, shares)
    names = [stage.name for stage in stages]
    return {
        "events": len(published_ms),
        "steps": steps(lines, names),
        "end_to_end": end_to_end(lines),
        "to_list_by_dataset": by_dataset(lines, datasets),
        "no_case": short_of_case(lines, datasets, names),
    }
