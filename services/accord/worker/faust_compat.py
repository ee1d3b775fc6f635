"""Every place the worker leans on faust's or aiokafka's internals (faust-streaming 0.15,
capped below 0.16; aiokafka capped below 0.15): the faust app as every Accord process runs
it, the producer's partitioner, the accessors below, and the offset-jump bookkeeping.
`tests/unit/test_faust_compat.py` fails when an attribute relied on here disappears.

Offset jumps.

faust reads a partition's records in a background loop and hands them to the streams.
When that loop sees a record whose offset is past the one after the last record it handed
on, it takes the offsets in between for a compaction gap (records a compacted topic no
longer holds) and counts them as acknowledged, so its next commit moves past them. The
worker reads no compacted topic as a stream: its partner and stage topics keep every
record. A jump there means records were fetched and dropped on the way (faust drops
fetched records around a rebalance, while a partition recovers, or when the flow stops),
and committing past them loses them. This happened after a SIGKILL and restart: hundreds
of person events per partition committed without being joined.

`MissedRecords` replaces that gap bookkeeping on the worker's consumer: a jump is noted,
never counted as acknowledged (faust's commit then stops before it), and `reread` seeks
the partition back to its committed offset so the records are read again. Records read
twice are harmless (see `accord.worker.batches`).
"""

from __future__ import annotations

import functools
import random
import types
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from accord.core.kafka import connection
from accord.core.logging import get_logger
from accord.core.settings import Settings

log = get_logger("accord.worker")


@functools.lru_cache(maxsize=65536)
def _key_partition(key: bytes, count: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % count


def partition_by_key(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Kafka's default partitioner (murmur2, as Java clients place keys), remembered per key.

    A person's key is hashed at every stage: into person-events, cases, the tables'
    changelogs, the audit and the share topics. aiokafka's murmur2 is pure Python and
    showed in profiles; the cache answers the repeats.
    """
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_key_partition(key, len(all_partitions))]


def faust_app(settings: Settings, name: str, **options: Any) -> faust.App:
    """A faust app as every Accord process runs it (the worker, the bench's faust mode):
    raw bytes in and out, in-memory tables, reading from the earliest offset, acks=all.
    """
    datadir = settings.state_dir / "faust" / name
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return faust.App(
        name,
        **connection(settings).faust(),
        store="memory://",
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=5,
        # A rebalance must not wait for streams to drain: a take_events buffer holds its
        # events until the batch is yielded, and waiting for it can stall the group.
        # Re-processing after a rebalance is harmless (see `accord.worker.batches`).
        stream_wait_empty=False,
        **options,
    )


# --- accessors of internals ------------------------------------------------------------


def kafka_producer(app: faust.App) -> Any:
    """The aiokafka producer under faust's (started on first use)."""
    return app.producer._ensure_producer()


def unacked_messages(consumer: Any) -> list[Any]:
    """Messages handed to streams and not yet acknowledged."""
    return list(consumer._unacked_messages)


def committed_offsets(consumer: Any) -> dict[Any, int | None]:
    """The offsets faust committed last, by partition."""
    return dict(consumer._committed_offset)


async def seek_to_beginning(consumer: Any, partitions: list[Any]) -> None:
    """Seek on the consumer thread's own client (faust's consumer has no public call)."""
    await consumer._thread.seek_to_beginning(*partitions)


def set_resubscribe_delay(app: faust.App, seconds: float) -> None:
    """faust waits 45 s before acting on a subscription change (to batch restarts)."""
    app.topics._resubscribe_sleep_lock_seconds = seconds


def resubscribe_if_unsubscribed(app: faust.App, names: list[str]) -> None:
    """Ask the conductor to subscribe again when any of `names` is not subscribed."""
    if any(name not in app.topics._topic_name_index for name in names):
        app.topics._flag_changes()


class MissedRecords:
    """Offset jumps on the consumer's stream partitions, to read again."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.jumps: dict[Any, tuple[int, int]] = {}  # partition -> (first missed, next read)
        # The fetch loop calls `self._add_gap(tp, first_missed, offset_read)` before it hands
        # the record at `offset_read` on; an attribute of the instance takes its place.
        consumer._add_gap = types.MethodType(self._note_jump, consumer)

    async def _note_jump(self, _consumer: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        first, _ = self.jumps.get(tp, (offset_from, offset_to))
        self.jumps[tp] = (min(first, offset_from), offset_to)

    def forget(self) -> None:
        """A rebalance seeks every partition to its committed offset anyway."""
        self.jumps.clear()

    async def reread(self) -> int:
        """Seek each partition with missed records back to its committed offset (or the
        first missed one if nothing is committed); the number of partitions rewound.
        Called after the fetch loop has moved on (a timer), so that the read offset it
        sets after handing on a record does not overwrite the seek."""
        rewound = 0
        for tp, (first, read) in list(self.jumps.items()):
            del self.jumps[tp]
            if tp not in self.consumer.assignment():
                continue
            committed = self.consumer._committed_offset.get(tp)
            offset = min(first, committed) if committed is not None else first
            log.warning(
                "missed_records_reread",
                topic=tp.topic,
                partition=tp.partition,
                missed_from=first,
                missed_to=read - 1,
                offset=offset,
            )
            await self.consumer.seek(tp, offset)
            rewound += 1
        return rewound
