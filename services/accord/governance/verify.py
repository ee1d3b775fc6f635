"""`accord audit verify`: read every partition of the audit and check its hash chain.

Reads as the audit principal (the only one that reads the audit besides the
administrator), read-committed, from each partition's first stored offset to its end,
and hands each record's bytes and link to the pure verifier
(`accord.core.auditchain.verify_partition`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from accord.core.auditchain import UNREADABLE, Link, PartitionReport, verify_partition
from accord.core.errors import AccordError, InfrastructureError
from accord.core.kafka import confluent_config
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.governance.audit_index import PlainDecoder


@dataclass
class Verification:
    topic: str
    partitions: list[PartitionReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def intact(self) -> bool:
        return all(p.intact for p in self.partitions)

    @property
    def checked(self) -> int:
        return sum(p.checked for p in self.partitions)


def _links(
    consumer: Consumer, topic: str, partition: int, decoder: PlainDecoder, timeout_s: float
) -> Iterator[Link]:
    """Every committed record of one partition, in order, as links."""
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    if high <= low:
        return
    consumer.assign([TopicPartition(topic, partition, low)])
    deadline = time.monotonic() + timeout_s
    while True:
        if time.monotonic() > deadline:
            raise InfrastructureError(f"{topic} partition {partition}: end not reached")
        for message in consumer.consume(num_messages=10000, timeout=0.5):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return
                raise InfrastructureError(f"reading {topic}: {error}")
            try:
                previous = decoder.decode(message.value()).get("chain_previous")
            except (AccordError, KeyError, ValueError, TypeError, EOFError, IndexError):
                previous = UNREADABLE
            yield Link(message.offset(), message.key(), message.value(), previous)


def verify(
    settings: Settings,
    serde: AvroSerde,
    topic: str,
    *,
    accept_truncated: bool = False,
    timeout_s: float = 600.0,
) -> Verification:
    """Check the chain of every partition of `topic`; InfrastructureError when it cannot be
    read (no such topic, no access, the broker away)."""
    started = time.monotonic()
    result = Verification(topic)
    consumer = Consumer(
        confluent_config(
            settings,
            **{
                "group.id": "accord-audit-verify",  # offsets are never committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "fetch.max.bytes": 64 * 1024 * 1024,
            },
        )
    )
    decoder = PlainDecoder(serde)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            error = metadata.error if metadata is not None else "no such topic"
            raise InfrastructureError(f"cannot read {topic}: {error}")
        for partition in sorted(metadata.partitions):
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            links = _links(consumer, topic, partition, decoder, timeout_s)
            report = verify_partition(
                partition, links, start_offset=low, accept_truncated=accept_truncated
            )
            result.partitions.append(report)
    except KafkaException as exc:
        raise InfrastructureError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()
    result.seconds = time.monotonic() - started
    return result
