"""Where the worker leans on faust's internals (faust-streaming 0.15, capped below 0.16).

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
twice are harmless (see `accord.worker.app`).
"""

from __future__ import annotations

import types
from typing import Any

from accord.core.logging import get_logger

log = get_logger("accord.worker")


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
