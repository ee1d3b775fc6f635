"""The faust internals `accord.worker.faust_compat` relies on: a faust upgrade that moves
them fails here, not silently in a crash campaign."""

from __future__ import annotations

import asyncio
import inspect

from faust.transport.consumer import Consumer
from faust.types import TP

from accord.worker.faust_compat import MissedRecords


def test_the_fetch_loop_still_reports_offset_jumps_through_add_gap():
    source = inspect.getsource(Consumer._drain_messages)
    assert "await self._add_gap(tp, r_offset + 1, offset)" in source
    assert hasattr(Consumer, "_add_gap") and hasattr(Consumer, "seek")
    assert "_committed_offset" in inspect.getsource(Consumer._new_offset)


class FakeConsumer:
    """Only the attributes MissedRecords touches (no Kafka: this is bookkeeping)."""

    def __init__(self, committed):
        self._committed_offset = committed
        self.seeks = []

    def assignment(self):
        return set(self._committed_offset)

    async def seek(self, tp, offset):
        self.seeks.append((tp, offset))


def test_a_jump_is_never_counted_acknowledged_and_is_read_again_from_the_commit():
    p0, p1, gone = TP("t", 0), TP("t", 1), TP("t", 2)
    consumer = FakeConsumer({p0: 92, p1: None})
    missed = MissedRecords(consumer)

    async def run():
        await consumer._add_gap(p0, 100, 775)  # what faust's fetch loop calls
        await consumer._add_gap(p0, 800, 810)
        await consumer._add_gap(p1, 5, 9)
        await consumer._add_gap(gone, 1, 3)  # revoked meanwhile: left alone
        return await missed.reread()

    assert asyncio.run(run()) == 2
    assert sorted(consumer.seeks) == [(p0, 92), (p1, 5)]
    assert missed.jumps == {}


def test_the_internals_behind_the_accessors_are_still_there():
    """`faust_compat`'s accessors read these; each must exist where it is read."""
    from faust.transport import conductor
    from faust.transport.consumer import Consumer, ThreadDelegateConsumer
    from faust.transport.drivers import aiokafka as driver

    assert "_ensure_producer" in vars(driver.Producer)
    assert hasattr(driver.AIOKafkaConsumerThread, "seek_to_beginning")
    assert "_thread" in inspect.getsource(ThreadDelegateConsumer.__init__)
    init = inspect.getsource(Consumer.__init__)
    assert "self._committed_offset =" in init and "self._unacked_messages =" in init
    assert conductor.Conductor._resubscribe_sleep_lock_seconds == 45.0
    assert "self._topic_name_index =" in inspect.getsource(conductor.Conductor.__init__)
    assert callable(conductor.Conductor._flag_changes)


# --- The tables' stores: a real faust table on a real RocksDB in a temporary dir ------------


def rocksdb_table(tmp_path, store="rocksdb://"):
    import faust

    from accord.worker import faust_compat

    app = faust.App("compat", store=store, datadir=str(tmp_path), value_serializer="raw")
    table = app.Table("cases", default=None, partitions=2, key_type=bytes, use_partitioner=True)
    if store.startswith("rocksdb"):
        faust_compat.bound_rocksdb(table, faust_compat.bounded_rocksdb_options(8 << 20, 16))
    return table


class ChangelogEvent:
    """What faust's recovery hands a store: an event whose message is the changelog record."""

    def __init__(self, topic, partition, offset, key, value):
        from types import SimpleNamespace

        self.message = SimpleNamespace(
            tp=TP(topic, partition), partition=partition, offset=offset, key=key, value=value
        )
        self.key, self.value = key, value


def test_the_rocksdb_store_still_keeps_one_db_per_partition_and_its_offset_in_it(tmp_path):
    from faust.stores.rocksdb import Store

    from accord.worker import faust_compat

    table = rocksdb_table(tmp_path)
    assert faust_compat.is_rocksdb(table)
    assert faust_compat.open_db(table, 1) is None  # not opened until assigned (or read)
    db = faust_compat.db_for_read(table, 1)
    assert faust_compat.open_db(table, 1) is db
    assert (tmp_path / "v1" / "tables" / "cases-1.db").is_dir()
    # What recovery writes (raw changelog bytes, then the offset) is what the worker reads.
    topic = table.changelog_topic.get_topic_name()
    events = [ChangelogEvent(topic, 1, 41, b"k", b'{"a":1}')]
    table.data.apply_changelog_batch(events, to_key=None, to_value=None)
    assert db.get(b"k") == b'{"a":1}'
    assert db.get(faust_compat.offset_key()) == b"41"
    assert table.data.persisted_offset(TP(topic, 1)) == 41
    assert faust_compat.offset_key() == Store.offset_key
    # The options faust opens each DB with are ours (one shared, bounded cache).
    assert table.data.rocksdb_options.block_cache_size == 8 << 20
    assert "_open_for_partition" in Store.__dict__ and "rocksdb_options" in inspect.getsource(
        Store._open_for_partition
    )
    batch = faust_compat.new_write_batch()
    batch.put(b"j", b"[]")
    db.write(batch)
    assert db.get(b"j") == b"[]"


def test_a_revoked_partitions_db_leaves_the_open_set(tmp_path):
    from accord.worker import faust_compat

    table = rocksdb_table(tmp_path)
    faust_compat.db_for_read(table, 0)
    table.data.revoke_partitions(table, {TP(table.changelog_topic.get_topic_name(), 0)})
    assert faust_compat.open_db(table, 0) is None


def test_stored_values_are_the_active_partitions_raw_bytes(tmp_path, monkeypatch):
    from accord.worker import faust_compat

    table = rocksdb_table(tmp_path)
    topic = table.changelog_topic.get_topic_name()
    for partition in (0, 1):
        faust_compat.db_for_read(table, partition).put(b"k%d" % partition, b"%d" % partition)
    monkeypatch.setattr(table.app.assignor, "assigned_actives", lambda: {TP(topic, 1)})
    assert list(faust_compat.stored_values(table)) == [b"1"]


def test_the_memory_store_is_still_a_dict_recovery_fills_with_decoded_json(tmp_path):
    from accord.worker import faust_compat

    table = rocksdb_table(tmp_path, store="memory://")
    assert not faust_compat.is_rocksdb(table)
    topic = table.changelog_topic.get_topic_name()
    events = [ChangelogEvent(topic, 0, 3, b"k", {"a": 1})]
    table.data.apply_changelog_batch(events, to_key=lambda k: k, to_value=lambda v: v)
    assert faust_compat.memory_data(table) == {b"k": {"a": 1}}
    assert list(faust_compat.stored_values(table)) == [{"a": 1}]
