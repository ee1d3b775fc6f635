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
