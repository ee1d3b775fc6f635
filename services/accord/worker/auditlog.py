"""The worker's audit writer: a batch's decision records, chained and committed before any
of its shares is sent.

Per audit partition the worker holds one transactional producer whose id names the
partition (`<worker id>-audit-<partition>`), and writes each batch's records of that
partition in one transaction together with the partition's new chain head in
`hub.audit-chain` (compacted, keyed by partition). Either both land or neither does, so
the head a worker reads back is always the hash of the last committed audit record of
its partition: the chain never forks when a worker dies, however it dies.

- A worker that takes a partition (after a restart, or from another worker) starts that
  partition's producer, which fences the previous owner's and aborts its open transaction
  (a killed worker's transaction blocks read-committed readers only until then, or until
  `ACCORD_AUDIT_TRANSACTION_TIMEOUT_MS` when no one takes the partition over), and only
  then reads the head, read-committed. A fenced previous owner can commit nothing more.
- Any failure (the audit topic missing, its ACL removed, the broker away) aborts the
  transaction, drops the producer and the head, and fails the batch, which is decided and
  written again: nothing of it was shared (see Gate.process).
- The worker never reads the audit itself (the audit principal alone does): the head comes
  from its own topic.

Replayed decisions after a crash are new records chained after what is really there; the
audit index keeps one row per decision id, so they count once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from accord.core.auditchain import GENESIS, record_hash
from accord.core.errors import InfrastructureError
from accord.core.kafka import connection
from accord.core.logging import get_logger
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import AUDIT_CHAIN, Topics

log = get_logger("accord.worker")

# How far back from the end the head is looked for before reading the whole partition
# (each committed transaction leaves one head record and one commit marker).
_TAIL = 64


def transactional_id(settings: Settings, partition: int) -> str:
    return f"{settings.worker_group}-audit-{partition}"


class AuditLog:
    def __init__(
        self,
        settings: Settings,
        serde: AvroSerde,
        partition_of: Callable[[bytes, int], int],
        partition_count: Callable[[str], Awaitable[int]],
        check_current: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.serde = serde
        self.topics = Topics(settings)
        self.audit_topic = self.topics.audit
        self.subject = Topics.subject(self.audit_topic)
        self.chain_topic = self.topics.internal(AUDIT_CHAIN)
        self.partition_of = partition_of
        self.partition_count = partition_count
        self.check_current = check_current  # raises when the running batch went stale
        self.partitions: int | None = None
        # The partitions this worker holds (None until the first assignment: any).
        self.owned: set[int] | None = None
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._heads: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._reader: AIOKafkaConsumer | None = None
        self._reading = asyncio.Lock()  # one consumer: one head read at a time
        # A write not done in this long failed (it will be retried whole).
        self.deadline_s = max(10.0, 2 * settings.audit_transaction_timeout_ms / 1000)

    # --- life cycle ------------------------------------------------------------------

    async def _count(self) -> int:
        if self.partitions is None:
            self.partitions = await self.partition_count(self.audit_topic)
        return self.partitions

    async def _consumer(self) -> AIOKafkaConsumer:
        if self._reader is None:
            reader = AIOKafkaConsumer(
                **connection(self.settings).aiokafka(),
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
            await reader.start()
            self._reader = reader
        return self._reader

    async def keep_only(self, partitions: set[int]) -> None:
        """After a rebalance: forget the producers and heads of partitions this worker no
        longer holds (another worker's producer fences them; coming back, they start again)."""
        self.owned = set(partitions)
        for partition in [p for p in self._producers if p not in partitions]:
            await self._drop(partition)
        for partition in [p for p in self._heads if p not in partitions]:
            self._heads.pop(partition, None)

    async def close(self) -> None:
        for partition in list(self._producers):
            await self._drop(partition)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader.stop()
            self._reader = None

    async def _drop(self, partition: int) -> None:
        self._heads.pop(partition, None)
        producer = self._producers.pop(partition, None)
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _producer(self, partition: int) -> AIOKafkaProducer:
        producer = self._producers.get(partition)
        if producer is None:
            if self.owned is not None and partition not in self.owned:
                raise InfrastructureError(f"audit partition {partition} is not this worker's")
            producer = AIOKafkaProducer(
                **connection(self.settings).aiokafka(),
                transactional_id=transactional_id(self.settings, partition),
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
                request_timeout_ms=int(self.settings.producer_delivery_timeout_s * 1000),
                transaction_timeout_ms=self.settings.audit_transaction_timeout_ms,
            )
            try:
                await producer.start()  # fences the previous owner, aborts its transaction
            except Exception:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producers[partition] = producer
            self._heads.pop(partition, None)  # read it again, now that no one else writes
        return producer

    async def head(self, partition: int) -> str:
        """The hash of the last committed audit record of `partition` (GENESIS if none),
        from the last committed head in `hub.audit-chain`."""
        if partition in self._heads:
            return self._heads[partition]
        async with self._reading:
            reader = await self._consumer()
            tp = TopicPartition(self.chain_topic, partition)
            reader.assign([tp])
            start = (await reader.beginning_offsets([tp]))[tp]
            end = (await reader.end_offsets([tp]))[tp]  # read-committed: the stable offset
            found: str | None = None
            deadline = time.monotonic() + self.deadline_s
            for begin in (max(start, end - _TAIL), start):
                reader.seek(tp, begin)
                while await reader.position(tp) < end:
                    if time.monotonic() > deadline:
                        raise InfrastructureError(f"{self.chain_topic} unreadable")
                    fetched = await reader.getmany(tp, timeout_ms=500)
                    for record in fetched.get(tp, ()):
                        if record.offset < end and record.value:
                            found = orjson.loads(record.value)["head"]
                if found is not None or begin == start:
                    break
        self._heads[partition] = found or GENESIS
        return self._heads[partition]

    # --- writing ---------------------------------------------------------------------

    async def write(self, audits: list[tuple[bytes, dict[str, Any]]]) -> None:
        """Every record committed, chained in its partition; raises InfrastructureError
        (nothing of the batch committed in the partitions that failed) otherwise."""
        count = await self._count()
        by_partition: dict[int, list[tuple[bytes, dict[str, Any]]]] = defaultdict(list)
        for key, record in audits:
            by_partition[self.partition_of(key, count)].append((key, record))
        results = await asyncio.gather(
            *(self._write_partition(p, records) for p, records in by_partition.items()),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        for exc in failed:
            if not isinstance(exc, InfrastructureError):
                raise exc  # cancelled, a stale batch, or a record that will not encode
        if failed:
            raise failed[0]

    async def _write_partition(
        self, partition: int, records: list[tuple[bytes, dict[str, Any]]]
    ) -> None:
        async with self._locks[partition]:
            try:
                try:
                    await asyncio.wait_for(self._commit(partition, records), self.deadline_s)
                except TimeoutError as exc:
                    raise InfrastructureError(f"audit partition {partition}: timed out") from exc
            except BaseException as exc:
                log.warning(
                    "audit_write_failed",
                    partition=partition,
                    records=len(records),
                    error=type(exc).__name__,
                )
                await self._drop(partition)
                raise

    async def _commit(self, partition: int, records: list[tuple[bytes, dict[str, Any]]]) -> None:
        """One transaction: the partition's records, each naming the hash of the one before,
        and the partition's new head."""
        self.check_current()  # a stale batch must not fence the partition's new owner
        try:
            producer = await self._producer(partition)
            head = await self.head(partition)
        except InfrastructureError:
            raise
        except Exception as exc:  # the client's errors are not all KafkaErrors
            raise InfrastructureError(f"audit partition {partition}: {type(exc).__name__}") from exc
        values = []
        for key, record in records:
            value = self.serde.encode(
                self.subject, "DecisionRecord", {**record, "chain_previous": head}
            )
            head = record_hash(key, value)
            values.append((key, value))
        chain = orjson.dumps({"partition": partition, "head": head})
        try:
            await self._transaction(producer, partition, values, chain)
        except Exception as exc:  # refused, fenced, timed out: the batch is tried again
            raise InfrastructureError(
                f"audit partition {partition}: write failed ({type(exc).__name__})"
            ) from exc
        self._heads[partition] = head

    async def _transaction(
        self, producer: AIOKafkaProducer, partition: int, values: list, chain: bytes
    ) -> None:
        async with producer.transaction():
            sent = [
                await producer.send(self.audit_topic, value, key=key, partition=partition)
                for key, value in values
            ]
            sent.append(
                await producer.send(
                    self.chain_topic, chain, key=b"%d" % partition, partition=partition
                )
            )
            # Every future retrieved, so a refused write is reported once, not per record.
            results = await asyncio.gather(*sent, return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
