"""How a stage processes a batch: retried whole while infrastructure fails, record by
record when a record fails, and never written or acknowledged once a rebalance began.

At-least-once: a batch's input offsets are acknowledged only after all its outputs are
acknowledged by the broker. Duplicates are harmless: states store events under their own
ids, outputs are keyed by person into compacted topics, provisional person keys and
decision ids are derived, not random.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError

from accord.core.errors import InfrastructureError
from accord.core.logging import get_logger
from accord.pipeline.intake import Incoming

log = get_logger("accord.worker")


async def process_until_done(
    work: Callable[[], Awaitable[dict[str, int]]], records: int, retry_s: float
) -> dict[str, int]:
    """Run a batch's work, retrying it whole while infrastructure fails.

    take_events acknowledges a batch once the loop body returns or raises, so the body
    must not return before the batch is done. A retried batch re-sends outputs with the
    same keys, which the compacted topics absorb. Any other error is the batch's own (a
    record no stage foresaw): it is raised for the caller to find and reject the record.
    """
    while True:
        try:
            return await work()
        except (InfrastructureError, KafkaError) as exc:
            log.warning("batch_retry", error=str(exc), records=records)
            await asyncio.sleep(retry_s)


def failure_reason(stage: str, exc: BaseException) -> str:
    """A rejects reason for a record a stage failed on: the stage and the error's type,
    never its message, which could quote the record."""
    return f"the {stage} stage failed on this record ({type(exc).__name__}); it was set aside"


async def record_by_record(
    handler: Callable[[list[Any]], Awaitable[dict[str, int]]],
    events: list[Any],
    stage: str,
    set_aside: Callable[[Any, str, BaseException], Awaitable[dict[str, int]]],
    retry_s: float,
) -> dict[str, int]:
    """A batch a stage failed on, again one record at a time: each record that still fails
    (not for infrastructure, which is retried) is set aside with the reason, the others
    are processed. Replayed records rewrite the same keys (see the module docstring)."""
    counts: dict[str, int] = {"records": len(events), "set_aside": 0}
    for each in events:
        try:
            await process_until_done(functools.partial(handler, [each]), 1, retry_s)
        except StaleBatch:
            raise
        except Exception as exc:
            await process_until_done(functools.partial(set_aside, each, stage, exc), 1, retry_s)
            counts["set_aside"] += 1
    return counts


class StaleBatch(Exception):
    """A rebalance began while a batch was being processed: it must write nothing more.

    Its partitions' owners process it again from the committed offsets; a late write
    from here (a case's state, a share) would land after theirs and undo it.
    """


# The consumer group's rebalance count when the running stage's batch began.
batch_began: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "batch_began", default=None
)


def fetched_in_this_generation(events: list[Any], generation: int, settled: bool) -> list[Any]:
    """The events a worker may still process and acknowledge: none while a rebalance is
    under way (not settled), and after it only those fetched in its generation.

    faust forgets its acknowledgements when partitions are revoked, and the new owner
    reads them again from the committed offset. An acknowledgement that arrives later,
    from a batch that straddled the rebalance, is kept: if its partition comes back,
    faust commits that older offset over the newer one another worker committed, then
    never commits the partition again (it waits for offsets no one will acknowledge).
    """
    if not settled:
        return []
    return [each for each in events if each.message.generation_id == generation]


def records_skipped(
    ends: dict[Any, int | None], committed: dict[Any, int | None], suspects: dict[Any, int]
) -> tuple[dict[Any, int], dict[Any, int]]:
    """(partitions to rewind to their committed offset, partitions to suspect next time).

    A partition is behind when its end is past its committed offset (none committed: 0);
    it is rewound when it was behind at the same committed offset on the previous check
    too, so records still being committed are left alone.
    """
    behind = {
        tp: committed.get(tp) or 0
        for tp, end in ends.items()
        if end is not None and end > (committed.get(tp) or 0)
    }
    rewind = {tp: offset for tp, offset in behind.items() if suspects.get(tp) == offset}
    return rewind, {tp: offset for tp, offset in behind.items() if tp not in rewind}


def is_changelog(topic: str) -> bool:
    """A table's changelog, which faust's recovery reads, not a stream."""
    return topic.endswith("-changelog")


def incoming(event: Any) -> Incoming:
    message = event.message
    return Incoming(message.topic, message.partition, message.offset, message.key, message.value)
