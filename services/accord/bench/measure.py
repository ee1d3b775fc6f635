"""What the benchmark reads off the broker: offsets, timestamps, records since a point.

Process memory is the harness's (`accord.stack.processes`)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

from kafka import TopicPartition

from accord.core.kafka import Connectable, consumer

TAIL = 50  # records read at the end of each partition for its latest timestamp


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (0 < fraction <= 1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class Offsets:
    """End offsets and first/last record timestamps of topics, from one consumer."""

    def __init__(self, target: Connectable) -> None:
        self.consumer = consumer(target, enable_auto_commit=False)

    def close(self) -> None:
        self.consumer.close()

    def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        return [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]

    def records(self, topics: Sequence[str]) -> int:
        """Records written to `topics` so far (the sum of their end offsets)."""
        tps = self.partitions(topics)
        return sum(self.consumer.end_offsets(tps).values()) if tps else 0

    def first_and_last_ms(self, topics: Sequence[str]) -> tuple[int, int] | None:
        """Broker timestamps of the earliest first record and the latest last record."""
        tps = self.partitions(topics)
        if not tps:
            return None
        begin, end = self.consumer.beginning_offsets(tps), self.consumer.end_offsets(tps)
        tps = [tp for tp in tps if end[tp] > begin[tp]]
        if not tps:
            return None
        firsts = self._scan({tp: begin[tp] for tp in tps}, end, first_only=True)
        # The last offsets may be transaction markers (the audit), not records: read the
        # tail of each partition and take its latest timestamp.
        lasts = self._scan({tp: max(begin[tp], end[tp] - TAIL) for tp in tps}, end)
        if not firsts or not lasts:
            return None
        return min(firsts.values()), max(lasts.values())

    def _scan(
        self,
        starts: dict[TopicPartition, int],
        end: dict[TopicPartition, int],
        first_only: bool = False,
        timeout_s: float = 60.0,
    ) -> dict[TopicPartition, int]:
        """Per partition, the first (or the latest) record timestamp from its start to its
        end, every partition read at once."""
        self.consumer.assign(list(starts))
        for tp, offset in starts.items():
            self.consumer.seek(tp, offset)
        found: dict[TopicPartition, int] = {}
        remaining = set(starts)
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            for tp, records in self.consumer.poll(timeout_ms=200, max_records=5000).items():
                for record in records:
                    if tp not in remaining:
                        break
                    found[tp] = max(found.get(tp, record.timestamp), record.timestamp)
                    if first_only or record.offset + 1 >= end[tp]:
                        remaining.discard(tp)
            for tp in list(remaining):
                if self.consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            paused = [tp for tp in starts if tp not in remaining]
            if paused:
                self.consumer.pause(*paused)
        self.consumer.resume(*starts)
        return found

    def ends(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """Every partition's end offset now: where a later `read_since` starts."""
        tps = self.partitions(topics)
        return dict(self.consumer.end_offsets(tps)) if tps else {}


def read_since(
    target: Connectable,
    topics: Sequence[str],
    starts: dict[TopicPartition, int],
    max_wait_s: float = 300.0,
) -> Iterator[Any]:
    """Every committed record of `topics` from `starts` (a partition not in it: from its
    beginning) to their end offsets as of the call, then stop. Read-committed, as the audit
    is written in transactions."""
    reader = consumer(
        target,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(reader.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return
        reader.assign(tps)
        end = reader.end_offsets(tps)
        begin = reader.beginning_offsets(tps)
        remaining = set()
        for tp in tps:
            start = max(starts.get(tp, 0), begin[tp])
            if start < end[tp]:
                reader.seek(tp, start)
                remaining.add(tp)
        reader.pause(*(tp for tp in tps if tp not in remaining))
        deadline = time.monotonic() + max_wait_s
        while remaining and time.monotonic() < deadline:
            for tp, records in reader.poll(timeout_ms=500, max_records=10000).items():
                for record in records:
                    if record.offset < end[tp]:
                        yield record
                    if record.offset + 1 >= end[tp]:
                        remaining.discard(tp)
            for tp in list(remaining):
                if reader.position(tp) >= end[tp]:
                    remaining.discard(tp)
                    reader.pause(tp)
    finally:
        reader.close()
