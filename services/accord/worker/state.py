"""The worker's tables as the stages use them: JSON values by key, on disk in RocksDB.

Each stage keeps its state in a faust table backed by a compacted changelog topic. The
store (`ACCORD_WORKER_STORE`) is RocksDB by default: one DB per changelog partition under
the worker's state dir, memory bounded by one shared cache (`ACCORD_WORKER_STORE_MEMORY_MB`)
whatever the number of people held. `memory` keeps every entry in the process (the
bench's comparison only).

A write is applied to the store once the broker has acknowledged its changelog record,
and never before: the store then holds exactly what the changelog holds, which is what
recovery (on this worker after a kill -9, or on another one) rebuilds. Until then the
batch that wrote it reads it back from the writes in flight. A batch killed half-way
leaves its unacknowledged writes nowhere, as a batch whose outputs were lost should: its
input is read again and the batch redone from the state before it.

faust's RocksDB store remembers in each DB the last changelog offset it applied, and its
recovery reads the changelog from there. A write's offset is recorded with it only when no
other write to the same partition is still in flight (so every earlier record is in the
DB), and never again in a partition where a send failed (the broker may hold a record the
DB does not: recovery must read it). A DB left by SIGKILL is consistent: RocksDB replays
its write-ahead log on opening and drops a torn last write, whose changelog record
recovery then applies.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from accord.core.logging import get_logger
from accord.worker import faust_compat

log = get_logger("accord.worker")

Send = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]


@dataclass
class _InFlight:
    latest: Any  # the value the batch reads back (None: read the store)
    seq: int  # the latest write's sequence number
    count: int = 0  # writes of this key not yet acknowledged (or failed)
    applied: int = -1  # the latest write applied to the store


class TableState:
    """One table: `get` a key's value, `values` of every key held, `put` a new value."""

    def __init__(self, table: Any, partition_of: Callable[[bytes], int]) -> None:
        self.table = table
        self.partition_of = partition_of
        self.rocksdb = faust_compat.is_rocksdb(table)
        self._in_flight: dict[bytes, _InFlight] = {}
        self._seq = 0
        self._partition_writes: Counter[int] = Counter()  # unacknowledged, by partition
        self._high: dict[int, int] = {}  # highest changelog offset applied, by partition
        self._failed: set[int] = set()  # partitions whose offset is no longer recorded
        self.applied = 0
        self.failed = 0

    @property
    def changelog(self) -> str:
        return self.table.changelog_topic.get_topic_name()

    def get(self, key: bytes) -> Any:
        pending = self._in_flight.get(key)
        if pending is not None and pending.latest is not None:
            return pending.latest
        if not self.rocksdb:
            return faust_compat.memory_data(self.table).get(key)
        raw = faust_compat.db_for_read(self.table, self.partition_of(key)).get(key)
        return None if raw is None else orjson.loads(raw)

    def values(self) -> Iterator[Any]:
        """Every value of the partitions this worker holds, as stored (acknowledged)."""
        for value in faust_compat.stored_values(self.table):
            yield orjson.loads(value) if self.rocksdb else value

    async def put(self, key: bytes, value: Any, send: Send) -> Awaitable[Any]:
        """Send the new value to the changelog; it reaches the store when the broker has
        it. Returns the acknowledgement to wait for (a batch waits for its state like for
        its other outputs)."""
        raw = orjson.dumps(value)
        written = asyncio.ensure_future(await send(self.changelog, key, raw))
        self._seq += 1
        pending = self._in_flight.get(key)
        if pending is None:
            pending = self._in_flight[key] = _InFlight(value, self._seq)
        pending.latest, pending.seq = value, self._seq
        pending.count += 1
        partition = self.partition_of(key)
        self._partition_writes[partition] += 1
        written.add_done_callback(
            lambda done, seq=self._seq: self._acknowledged(done, key, raw, value, seq, partition)
        )
        return written

    def _acknowledged(
        self, done: asyncio.Future, key: bytes, raw: bytes, value: Any, seq: int, partition: int
    ) -> None:
        pending = self._in_flight[key]
        pending.count -= 1
        self._partition_writes[partition] -= 1
        if done.cancelled() or done.exception() is not None:
            # The broker may or may not have it: the DB must not claim to be past it.
            self._failed.add(partition)
            self.failed += 1
            if pending.seq == seq:
                pending.latest = None
        else:
            metadata = done.result()
            offset = getattr(metadata, "offset", None)
            if seq > pending.applied:
                pending.applied = seq
                self._apply(partition, key, raw, value, offset)
        if pending.count == 0:
            del self._in_flight[key]

    def _apply(self, partition: int, key: bytes, raw: bytes, value: Any, offset: Any) -> None:
        self.applied += 1
        if not self.rocksdb:
            faust_compat.memory_data(self.table)[key] = value
            return
        db = faust_compat.open_db(self.table, partition)
        if db is None:
            return  # revoked meanwhile: its new owner recovers it from the changelog
        if isinstance(offset, int) and offset > self._high.get(partition, -1):
            self._high[partition] = offset
        batch = faust_compat.new_write_batch()
        batch.put(key, raw)
        high = self._high.get(partition)
        if high is not None and partition not in self._failed:
            if self._partition_writes[partition] == 0 and high > self._persisted(db):
                batch.put(faust_compat.offset_key(), str(high).encode())
        db.write(batch)

    @staticmethod
    def _persisted(db: Any) -> int:
        raw = db.get(faust_compat.offset_key())
        return -1 if raw is None else int(raw)

    def revoked(self, partitions: set[int]) -> None:
        """Partitions handed to another worker: what is known of them starts again."""
        for partition in partitions:
            self._high.pop(partition, None)
            self._failed.discard(partition)
