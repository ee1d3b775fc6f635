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

from accord.core.kafka import connection, replication
from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.worker.datadir import claim_datadir, store_url

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
    raw bytes in and out, tables in RocksDB (`accord.worker.state`) under a datadir of
    this process's own (0700, `accord.worker.datadir`), reading from the earliest offset,
    acks=all. `options` may replace any of these (the bench's driver comparison names its
    broker).
    """
    config: dict[str, Any] = {
        **connection(settings).faust(),
        "store": store_url(settings),
        "datadir": str(claim_datadir(settings, name)),
        "key_serializer": "raw",
        "value_serializer": "raw",
        "web_enabled": False,
        # The worker declares no topic (the administrator made them, replicated by
        # accord.core.kafka.replication); faust is told the same factor all the same.
        "topic_replication_factor": replication(
            len(settings.bootstrap_servers.split(",")), settings.topic_replication_factor
        )[0],
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        # A send not acknowledged in time fails, and its batch is retried whole
        # (accord.worker.batches): the hub waits for Kafka, it never drops.
        "producer_request_timeout": settings.producer_delivery_timeout_s,
        "producer_linger_ms": 5,
        # A rebalance must not wait for streams to drain: a take_events buffer holds its
        # events until the batch is yielded, and waiting for it can stall the group.
        # Re-processing after a rebalance is harmless (see `accord.worker.batches`).
        "stream_wait_empty": False,
    }
    return faust.App(name, **{**config, **options})


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


# --- The tables' stores (faust.stores.memory and faust.stores.rocksdb) --------------------
#
# `accord.worker.state` reads and writes a table's store directly, as bytes, in the
# partition the changelog record went to: faust's own `table[key] = value` takes the
# partition from the stream's current event (wrong for a batch from several partitions)
# and encodes values with its own JSON codec, not the bytes the changelog carries.
#
# faust's RocksDB store keeps one DB per changelog partition (`<tabledir>/<table>-<n>.db`)
# and, in each, the last changelog offset applied under `Store.offset_key`; recovery seeks
# the changelog there and applies what follows. Opened DBs are in `Store._dbs`; a revoked
# partition's DB is dropped from it (closed when collected).


def is_rocksdb(table: Any) -> bool:
    from faust.stores.rocksdb import Store

    return isinstance(table.data, Store)


def open_db(table: Any, partition: int) -> Any | None:
    """The partition's RocksDB (rocksdict.Rdict) if this worker has it open, else None."""
    return table.data._dbs.get(partition)


def db_for_read(table: Any, partition: int) -> Any:
    """The partition's RocksDB, opened if need be (faust opens assigned partitions' DBs
    at assignment; this covers a read before that)."""
    return table.data._db_for_partition(partition)


def offset_key() -> bytes:
    from faust.stores.rocksdb import Store

    return Store.offset_key


def new_write_batch() -> Any:
    import rocksdict

    return rocksdict.WriteBatch(raw_mode=True)


def stored_values(table: Any) -> Any:
    """Every value of the partitions this worker holds: raw bytes from RocksDB (the
    changelog's JSON), decoded objects from the memory store."""
    if is_rocksdb(table):
        return table.data._itervalues()
    return table.data.data.values()


def memory_data(table: Any) -> Any:
    """The memory store's dict (key bytes -> decoded JSON value)."""
    return table.data.data


def bound_rocksdb(table: Any, options: Any) -> None:
    """Open the table's DBs with `options` (a faust RocksDBOptions) instead of the one
    faust made from the table's `options`: faust gives every DB its own 2 GiB block cache
    and 3 x 64 MiB write buffers, while one shared cache bounds them all."""
    table.data.rocksdb_options = options


def bounded_rocksdb_options(memory_bytes: int, max_open_files: int) -> Any:
    """faust's RocksDBOptions whose DBs share one block cache of `memory_bytes`, their
    write buffers (memtables) charged to that same cache, their index and filter blocks
    kept in it: a worker's RocksDB memory stays under one bound however many DBs
    (tables x partitions) and entries it holds."""
    import rocksdict
    from faust.stores.rocksdb import RocksDBOptions

    cache = rocksdict.Cache(memory_bytes)
    buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
        memory_bytes // 2, False, cache
    )

    class Bounded(RocksDBOptions):
        def as_options(self) -> Any:
            options = rocksdict.Options(raw_mode=True)
            options.create_if_missing(True)
            options.set_max_open_files(max_open_files)
            options.set_write_buffer_size(self.write_buffer_size)
            options.set_max_write_buffer_number(self.max_write_buffer_number)
            options.set_target_file_size_base(self.target_file_size_base)
            options.set_write_buffer_manager(buffers)
            table = rocksdict.BlockBasedOptions()
            table.set_bloom_filter(self.bloom_filter_size, block_based=True)
            table.set_block_cache(cache)
            table.set_cache_index_and_filter_blocks(True)
            table.set_pin_l0_filter_and_index_blocks_in_cache(True)
            options.set_block_based_table_factory(table)
            return options

    return Bounded(
        max_open_files=max_open_files,
        write_buffer_size=4 * 1024 * 1024,
        max_write_buffer_number=2,
        target_file_size_base=16 * 1024 * 1024,
        block_cache_size=memory_bytes,
        use_rocksdict=True,
    )


# --- faust's confluent-kafka (librdkafka) driver (faust.transport.drivers.confluent) --------
#
# The driver builds its clients from the broker URL alone: `confluent_kafka.Consumer` with
# bootstrap servers, group and timeouts, `confluent_kafka.Producer` with bootstrap servers
# and client id. It ignores `broker_credentials`, so against the hub's SASL_SSL listener
# librdkafka speaks plaintext and the broker drops it. The bench measures the driver with
# the hub's own client settings added to each client's configuration.


def secure_confluent_driver(config: dict[str, Any]) -> None:
    """Make faust's confluent driver build its librdkafka clients with `config` (the
    security settings of `accord.core.kafka.KafkaConnection.confluent`) added."""
    import confluent_kafka
    from faust.transport.drivers import confluent as driver

    class Secured(types.SimpleNamespace):
        pass

    driver.confluent_kafka = Secured(
        Consumer=lambda *args, **options: confluent_kafka.Consumer(
            {**(args[0] if args else {}), **options, **config}
        ),
        Producer=lambda options: confluent_kafka.Producer({**options, **config}),
        __version__=confluent_kafka.__version__,
    )


def drop_spinner(worker: Any) -> None:
    """faust's Worker draws a start-up spinner and, once started, writes backspaces and
    the terminal's show-cursor sequence even when its output is a file: off a terminal
    the worker has none (`faust.worker.Worker.spinner`, checked before each use)."""
    worker.spinner = None
