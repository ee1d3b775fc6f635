"""The worker's tables (`accord.worker.state`): a value reaches the store only once the
broker has its changelog record, a batch reads its own writes before that, and the offset
recorded in a DB never claims a record the DB does not hold. Real faust tables on a real
RocksDB in a temporary dir; the broker's acknowledgements are futures the test resolves."""

from __future__ import annotations

import asyncio
import os
import stat
from types import SimpleNamespace

import pytest
from faust.types import TP

from accord.core.settings import Settings
from accord.worker import faust_compat
from accord.worker.datadir import claim_datadir, group_datadir, remove_group_state
from accord.worker.state import TableState

from .test_faust_compat import rocksdb_table


def partition_of(key: bytes) -> int:
    return 0 if key < b"m" else 1


class Broker:
    """Records every changelog send; the test acknowledges or fails each."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, asyncio.Future]] = []
        self.offsets = [0, 0]

    async def send(self, topic: str, key: bytes, raw: bytes) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.sent.append((topic, key, raw, future))
        return future

    def ack(self, index: int) -> None:
        _, key, _, future = self.sent[index]
        partition = partition_of(key)
        future.set_result(SimpleNamespace(partition=partition, offset=self.offsets[partition]))
        self.offsets[partition] += 1

    def fail(self, index: int) -> None:
        self.sent[index][3].set_exception(RuntimeError("broker gone"))


def assigned(table):
    """Open every partition's DB, as faust does for the partitions it assigns."""
    for partition in (0, 1):
        faust_compat.db_for_read(table, partition)
    return table


def stored(table, key: bytes) -> bytes | None:
    return faust_compat.db_for_read(table, partition_of(key)).get(key)


def persisted(table, partition: int) -> int | None:
    return table.data.persisted_offset(TP(table.changelog_topic.get_topic_name(), partition))


def run(coro):
    return asyncio.run(coro)


def test_a_value_reaches_the_db_as_the_changelogs_bytes_only_when_acknowledged(tmp_path):
    table, broker = assigned(rocksdb_table(tmp_path)), Broker()
    state = TableState(table, partition_of)

    async def scenario():
        await state.put(b"a", {"people": [1]}, broker.send)
        assert state.get(b"a") == {"people": [1]}  # the batch reads its own write
        assert stored(table, b"a") is None  # not in the DB before the broker has it
        broker.ack(0)
        await asyncio.sleep(0)

    run(scenario())
    topic, key, raw, _ = broker.sent[0]
    assert topic == table.changelog_topic.get_topic_name() and key == b"a"
    assert stored(table, b"a") == raw == b'{"people":[1]}'
    assert state.get(b"a") == {"people": [1]}  # now read from the DB
    assert persisted(table, 0) == 0


def test_an_unacknowledged_write_is_lost_with_its_batch_and_the_offset_waits(tmp_path):
    table, broker = assigned(rocksdb_table(tmp_path)), Broker()
    state = TableState(table, partition_of)

    async def scenario():
        await state.put(b"a", {"v": 1}, broker.send)
        broker.ack(0)
        await asyncio.sleep(0)
        await state.put(b"b", {"v": 2}, broker.send)
        await state.put(b"c", {"v": 3}, broker.send)
        broker.ack(2)  # c is acknowledged while b is still in flight
        await asyncio.sleep(0)
        # c is in the DB, but the offset must not pass b's, which the DB lacks.
        assert stored(table, b"c") == b'{"v":3}' and persisted(table, 0) == 0
        broker.ack(1)
        await asyncio.sleep(0)

    run(scenario())
    assert stored(table, b"b") == b'{"v":2}'
    assert persisted(table, 0) == 2


def test_a_failed_send_never_reaches_the_db_and_stops_recording_offsets(tmp_path):
    table, broker = assigned(rocksdb_table(tmp_path)), Broker()
    state = TableState(table, partition_of)

    async def scenario():
        await state.put(b"a", {"v": 1}, broker.send)
        broker.ack(0)
        await asyncio.sleep(0)
        await state.put(b"a", {"v": 2}, broker.send)
        assert state.get(b"a") == {"v": 2}
        broker.fail(1)
        await asyncio.sleep(0)
        assert state.get(b"a") == {"v": 1}  # read from the DB again
        await state.put(b"b", {"v": 3}, broker.send)
        broker.ack(2)
        await asyncio.sleep(0)

    run(scenario())
    assert stored(table, b"a") == b'{"v":1}' and stored(table, b"b") == b'{"v":3}'
    # The broker may hold the failed record: recovery must read from before it.
    assert persisted(table, 0) == 0
    assert state.failed == 1


def test_the_latest_write_of_a_key_wins_whatever_the_order_of_acknowledgements(tmp_path):
    table, broker = assigned(rocksdb_table(tmp_path)), Broker()
    state = TableState(table, partition_of)

    async def scenario():
        await state.put(b"a", {"v": 1}, broker.send)
        await state.put(b"a", {"v": 2}, broker.send)
        broker.ack(1)
        await asyncio.sleep(0)
        broker.ack(0)
        await asyncio.sleep(0)

    run(scenario())
    assert stored(table, b"a") == b'{"v":2}'


def test_a_write_for_a_revoked_partition_is_left_to_its_new_owner(tmp_path):
    table, broker = assigned(rocksdb_table(tmp_path)), Broker()
    state = TableState(table, partition_of)
    topic = table.changelog_topic.get_topic_name()
    faust_compat.db_for_read(table, 1)

    async def scenario():
        await state.put(b"z", {"v": 1}, broker.send)
        table.data.revoke_partitions(table, {TP(topic, 1)})
        state.revoked({1})
        broker.ack(0)
        await asyncio.sleep(0)

    run(scenario())
    assert faust_compat.open_db(table, 1) is None  # not opened again by the late ack
    assert stored(table, b"z") is None


def test_the_memory_store_takes_the_value_on_acknowledgement_too(tmp_path):
    table, broker = rocksdb_table(tmp_path, store="memory://"), Broker()
    state = TableState(table, partition_of)

    async def scenario():
        await state.put(b"a", {"v": 1}, broker.send)
        assert faust_compat.memory_data(table) == {}
        broker.ack(0)
        await asyncio.sleep(0)

    run(scenario())
    assert faust_compat.memory_data(table) == {b"a": {"v": 1}}
    assert list(state.values()) == [{"v": 1}]


def test_each_running_process_of_a_group_gets_its_own_private_datadir(tmp_path):
    settings = Settings(state_dir=tmp_path / "state")
    first = claim_datadir(settings, "group")
    second = claim_datadir(settings, "group")
    assert first != second and first.parent == second.parent == group_datadir(settings, "group")
    for folder in (first, first.parent):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    remove_group_state(settings, "group")
    assert not group_datadir(settings, "group").exists()


@pytest.mark.parametrize("store", ["rocksdb", "memory"])
def test_the_store_setting(store, monkeypatch):
    monkeypatch.setenv("ACCORD_WORKER_STORE", store)
    assert Settings().worker_store == store
