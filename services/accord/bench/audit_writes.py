"""`accord bench --audit-writes`: what writing the audit before the shares costs, side by side.

The gate's writes for a batch of cases (a share and two decision records per case, the
demo's mix), in four orders, on the real broker, in one run, alternating round by round
so that the machine's load falls on all alike:

    concurrent     shares and audit records queued together, then all awaited: the order
                   before this change, where a failed audit write could follow a share
    ordered        the audit records awaited first, then the shares (option b)
    transactional  shares and audit records in one Kafka transaction (option a; readers of
                   the lists would have to read committed)
    chained        what the worker does: per audit partition one transaction of its records
                   and the partition's new chain head, then the shares

Payloads are random bytes of the records' sizes, keys spread over the partitions like
person keys. Reports cases/s and the per-batch latency (p50, p95), and each as a ratio of
`concurrent`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from accord.bench.measure import percentile
from accord.core.auditchain import record_hash
from accord.core.kafka import connection, delete_topics, ensure_topics
from accord.core.settings import Settings

MODES = ("concurrent", "ordered", "transactional", "chained")
SHARE_BYTES, AUDIT_BYTES, AUDITS_PER_CASE = 420, 360, 2


@dataclass
class Figures:
    mode: str
    cases: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction) or 0.0


def _batch(size: int, partitions: int) -> list[tuple[bytes, int, bytes, list[bytes]]]:
    """(key, partition, share, audit records) per case."""
    cases = []
    for _ in range(size):
        key = uuid.uuid4().hex.encode()
        partition = hash(key) % partitions
        audits = [os.urandom(AUDIT_BYTES) for _ in range(AUDITS_PER_CASE)]
        cases.append((key, partition, os.urandom(SHARE_BYTES), audits))
    return cases


async def run(
    settings: Settings,
    *,
    batches: int = 40,
    batch_size: int = 200,
    partitions: int = 6,
    say: Callable[[str], None] = print,
) -> dict[str, Figures]:
    from aiokafka import AIOKafkaProducer

    run_id = uuid.uuid4().hex[:8]
    share_topic = f"{settings.topic_prefix}bench-audit{run_id}.share"
    audit_topic = f"{settings.topic_prefix}bench-audit{run_id}.audit"
    chain_topic = f"{settings.topic_prefix}bench-audit{run_id}.chain"
    ensure_topics(settings, {share_topic: None, audit_topic: None, chain_topic: None}, partitions)
    conn = connection(settings).aiokafka()
    common: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}
    plain = AIOKafkaProducer(**conn, **common)
    whole = AIOKafkaProducer(**conn, **common, transactional_id=f"bench-audit{run_id}-all")
    per_partition = {
        p: AIOKafkaProducer(**conn, **common, transactional_id=f"bench-audit{run_id}-{p}")
        for p in range(partitions)
    }
    producers = [plain, whole, *per_partition.values()]
    for producer in producers:
        await producer.start()

    async def shares(producer: Any, cases: list) -> list:
        return [
            await producer.send(share_topic, share, key=key, partition=p)
            for key, p, share, _ in cases
        ]

    async def audits(producer: Any, cases: list) -> list:
        return [
            await producer.send(audit_topic, audit, key=key, partition=p)
            for key, p, _, records in cases
            for audit in records
        ]

    async def concurrent(cases: list) -> None:
        await asyncio.gather(*(await shares(plain, cases)), *(await audits(plain, cases)))

    async def ordered(cases: list) -> None:
        await asyncio.gather(*(await audits(plain, cases)))
        await asyncio.gather(*(await shares(plain, cases)))

    async def transactional(cases: list) -> None:
        async with whole.transaction():
            await asyncio.gather(*(await audits(whole, cases)), *(await shares(whole, cases)))

    heads: dict[int, str] = defaultdict(lambda: "0" * 64)

    async def chained(cases: list) -> None:
        grouped: dict[int, list] = defaultdict(list)
        for case in cases:
            grouped[case[1]].append(case)

        async def one(p: int, group: list) -> None:
            producer, head = per_partition[p], heads[p]
            async with producer.transaction():
                sent = []
                for key, _, _, records in group:
                    for audit in records:
                        value = head.encode() + audit  # the record names its predecessor
                        head = record_hash(key, value)
                        sent.append(await producer.send(audit_topic, value, key=key, partition=p))
                sent.append(await producer.send(chain_topic, head.encode(), partition=p))
                await asyncio.gather(*sent)
            heads[p] = head

        await asyncio.gather(*(one(p, group) for p, group in grouped.items()))
        await asyncio.gather(*(await shares(plain, cases)))

    writers = {
        "concurrent": concurrent,
        "ordered": ordered,
        "transactional": transactional,
        "chained": chained,
    }
    figures = {mode: Figures(mode) for mode in MODES}
    try:
        for mode in MODES:  # warm-up: connections, coordinators, producer ids
            await writers[mode](_batch(batch_size, partitions))
        for round_number in range(batches):
            for mode in MODES:
                cases = _batch(batch_size, partitions)
                began = time.perf_counter()
                await writers[mode](cases)
                elapsed = time.perf_counter() - began
                figures[mode].cases += len(cases)
                figures[mode].seconds += elapsed
                figures[mode].latencies_ms.append(elapsed * 1000)
            if (round_number + 1) % 10 == 0:
                say(f"audit writes: {round_number + 1}/{batches} rounds")
    finally:
        for producer in producers:
            await producer.stop()
        delete_topics(settings, f"{settings.topic_prefix}bench-audit{run_id}.")
    return figures


def report(figures: dict[str, Figures], batch_size: int) -> list[str]:
    base = figures["concurrent"]
    lines = [
        f"audit writes, batches of {batch_size} cases ({AUDITS_PER_CASE} audit records and "
        "1 share each):",
        f"  {'mode':<14} {'cases/s':>9} {'x':>6} {'p50 ms':>8} {'x':>6} {'p95 ms':>8} {'x':>6}",
    ]
    for mode in MODES:
        f = figures[mode]
        lines.append(
            f"  {mode:<14} {f.rate:>9.0f} {f.rate / base.rate:>6.2f} {f.p(0.5):>8.1f} "
            f"{f.p(0.5) / base.p(0.5):>6.2f} {f.p(0.95):>8.1f} {f.p(0.95) / base.p(0.95):>6.2f}"
        )
    spread = statistics.pstdev(base.latencies_ms) if len(base.latencies_ms) > 1 else 0.0
    lines.append(f"  (concurrent latency spread: {spread:.1f} ms standard deviation)")
    return lines
