"""What the benchmark reads off the broker and the processes: offsets, timestamps, memory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from kafka import TopicPartition

from accord.core.kafka import Connectable, consumer


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (0 < fraction <= 1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def peak_rss_mb(pid: int) -> float | None:
    """A live process's peak resident memory (VmHWM), in MB; None where /proc cannot say."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


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
        firsts, lasts = [], []
        for tp in tps:
            if end[tp] <= begin[tp]:
                continue
            firsts.append(self._timestamp(tp, begin[tp]))
            lasts.append(self._timestamp(tp, end[tp] - 1))
        firsts = [t for t in firsts if t is not None]
        lasts = [t for t in lasts if t is not None]
        if not firsts or not lasts:
            return None
        return min(firsts), max(lasts)

    def _timestamp(self, tp: TopicPartition, offset: int) -> int | None:
        self.consumer.assign([tp])
        self.consumer.seek(tp, offset)
        for _ in range(20):
            for records in self.consumer.poll(timeout_ms=500, max_records=1).values():
                for record in records:
                    return record.timestamp
        return None
