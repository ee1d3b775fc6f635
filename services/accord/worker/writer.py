"""The worker's writes: records and table state, each returning the broker's
acknowledgement to wait for, and refused once a rebalance overtook the batch.

Straight to the producer rather than through faust's Topic.send, whose per-message
bookkeeping (callbacks, sensors) cost more than the stages' own work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import faust
import orjson

from accord.core.errors import InfrastructureError
from accord.core.logging import get_logger
from accord.core.topics import Topics
from accord.pipeline.stages import Outputs
from accord.worker.batches import StaleBatch, batch_began
from accord.worker.faust_compat import kafka_producer
from accord.worker.state import TableState

log = get_logger("accord.worker")


class Writer:
    def __init__(self, app: faust.App, topics: Topics) -> None:
        self.app = app
        self.topics = topics
        self.declared: set[str] = set()
        self.declaring: dict[str, asyncio.Lock] = {}

    def still_current(self) -> None:
        """Raise StaleBatch when a rebalance began since the running batch did."""
        began = batch_began.get()
        if began is not None and began != self.app.rebalancing_count:
            raise StaleBatch()

    async def declare(self, name: str) -> None:
        """Make the topic known to the producer. The worker creates no topic: one the
        administrator has not made (a recipient no provisioning knows) fails the send,
        and the batch is held, not lost, until it exists."""
        if name in self.declared:
            return
        async with self.declaring.setdefault(name, asyncio.Lock()):
            if name not in self.declared:
                producer = kafka_producer(self.app)
                if name not in producer.client.cluster.topics():
                    await producer.client.force_metadata_update()
                if name not in producer.client.cluster.topics():
                    log.error("topic_missing", topic=name, fix="accord security apply")
                    raise InfrastructureError(f"topic {name} does not exist")
                await producer.partitions_for(name)
                self.declared.add(name)

    async def partition_count(self, name: str) -> int:
        await self.declare(name)
        return len(await kafka_producer(self.app).partitions_for(name))

    async def send(
        self,
        name: str,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]:
        """Queue one record; the returned future resolves when the broker has it."""
        await self.declare(name)
        self.still_current()
        return await self.app.producer.send(name, key, value, None, None, headers or None)

    async def put(self, state: TableState, key: bytes, value: Any) -> Awaitable[Any]:
        """table[key] = value; returns the changelog write's acknowledgement to wait for.

        faust writes a table's changelog in the background (send_soon), so a batch could
        be committed before its state change reached the broker, and a partition moved to
        another worker then recovered stale state. Writing the changelog here lets each
        batch wait for its state like for its other outputs; the store takes the value
        once the broker has it (`accord.worker.state`). The record is what faust writes
        (raw key, JSON value) in the partition its partitioner picks.
        """
        return await state.put(key, value, self.send)  # a stale batch's send is refused

    async def write(self, out: Outputs, state: TableState | None = None) -> list[Awaitable[Any]]:
        """Queue a stage's records (by stage topic) and its table's new state; the
        acknowledgements to wait for before the batch is done."""
        pending = []
        for stage_topic, key, value in out.records:
            name = self.topics.internal(stage_topic)
            body = None if value is None else orjson.dumps(value)  # None: a tombstone
            pending.append(await self.send(name, key, body))
        if state is not None:
            for key, value in out.state.items():
                pending.append(await self.put(state, key, value))
        return pending
