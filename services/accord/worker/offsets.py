"""Guards around faust's offsets: which fetched events a worker may still process after a
rebalance, and reading again records faust fetched and never handed to a stream."""

from __future__ import annotations

import contextlib
from typing import Any

import faust

from accord.core.logging import get_logger
from accord.worker.batches import fetched_in_this_generation, is_changelog, records_skipped
from accord.worker.faust_compat import (
    MissedRecords,
    committed_offsets,
    seek_to_beginning,
    unacked_messages,
)

log = get_logger("accord.worker")


class OffsetGuard:
    def __init__(self, app: faust.App) -> None:
        self.app = app
        # app.rebalancing_count grows when a rebalance starts, before faust forgets
        # anything; the group has settled when the latest assignment came after it.
        self.assigned_after = -1
        self.missed = MissedRecords(app.consumer)
        self.suspects: dict[Any, int] = {}

    @property
    def settled(self) -> bool:
        return self.app.rebalancing_count == self.assigned_after

    def assigned(self) -> None:
        self.assigned_after = self.app.rebalancing_count

    def revoked(self) -> None:
        self.missed.forget()

    def current(self, events: list[Any]) -> list[Any]:
        """The events of a batch this worker may still process and acknowledge."""
        return fetched_in_this_generation(events, self.app.consumer_generation_id, self.settled)

    async def reread_missed(self) -> None:
        """Read again records faust fetched and dropped (see `faust_compat`)."""
        if self.missed.jumps and not self.app.rebalancing:
            await self.missed.reread()

    async def reread_uncommitted(self) -> None:
        """Read partitions with nothing committed yet from their beginning again.

        After every rebalance faust seeks each partition to its committed offset so that
        records it fetched and dropped meanwhile are read again; aiokafka skips that seek
        where nothing is committed. Records a stale batch left unacknowledged there would
        then be passed over, and faust (whose gap check needs a committed offset) would
        commit the later ones over them. Sent before faust resumes its streams.
        """
        committed = await self.app.consumer.seek_to_committed()
        uncommitted = [
            tp for tp, offset in committed.items() if not offset and not is_changelog(tp.topic)
        ]
        if uncommitted:
            await seek_to_beginning(self.app.consumer, uncommitted)

    async def rewind_skipped(self) -> None:
        """Re-read records faust fetched but never handed to a stream.

        Around a rebalance faust drops fetched records (a generation changed, flow was
        stopped) after the client has moved past them, and counts on a seek to the
        committed offset to read them again; the client skips that seek for a partition
        with nothing committed yet. The records then wait, unprocessed and uncommitted,
        until the next restart. A worker with nothing in hand whose committed offset
        stays behind a partition's end on two checks in a row rewinds it.
        """
        app, consumer = self.app, self.app.consumer
        busy = app.rebalancing or any(
            not m.acked and m.generation_id == app.consumer_generation_id
            for m in unacked_messages(consumer)
        )
        if busy or not self.settled:
            self.suspects.clear()
            return
        ends = {}
        for tp in consumer.assignment():
            if not is_changelog(tp.topic):
                with contextlib.suppress(Exception):  # a partition revoked meanwhile
                    ends[tp] = consumer.highwater(tp)
        rewind, behind = records_skipped(ends, committed_offsets(consumer), self.suspects)
        self.suspects.clear()
        self.suspects.update(behind)
        for tp, offset in rewind.items():
            log.warning(
                "partition_rewound",
                topic=tp.topic,
                partition=tp.partition,
                offset=offset,
                end=ends[tp],
            )
            await consumer.seek(tp, offset)
