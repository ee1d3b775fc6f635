"""Kafka helpers shared by the CLI tools: topic creation, acknowledged producers, readers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorError,
    TopicAlreadyExistsError,
)

from accord.core.errors import InfrastructureError

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
CLIENT_ID = "accord"


def admin_client(bootstrap: str, timeout_ms: int = 15000) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id=CLIENT_ID, request_timeout_ms=timeout_ms
        )
    except KafkaError as exc:
        raise InfrastructureError(f"Kafka at {bootstrap} unreachable: {exc}") from exc


def ensure_topics(
    bootstrap: str, topics: dict[str, dict[str, str] | None], partitions: int
) -> None:
    """Create each topic (name -> configs) if missing; existing topics are left as they are."""
    admin = admin_client(bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = {
            name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}
            for name, configs in topics.items()
            if name not in existing
        }
        if missing:
            try:
                admin.create_topics(missing, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                pass  # another process created it between the list and the create
    except KafkaError as exc:
        raise InfrastructureError(f"could not create topics {sorted(topics)}: {exc}") from exc
    finally:
        admin.close()


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with `prefix` (test clean-up)."""
    admin = admin_client(bootstrap)
    try:
        doomed = [t for t in admin.list_topics() if t.startswith(prefix)]
        if doomed:
            admin.delete_topics(doomed, raise_errors=False)
    finally:
        admin.close()


def acknowledged_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """A producer whose sends count only once every in-sync replica has them."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": CLIENT_ID,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "compression_type": "gzip",
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaError as exc:
        raise InfrastructureError(f"Kafka at {bootstrap} unreachable: {exc}") from exc


def read_topic(
    bootstrap: str, topic: str, idle_timeout_s: float = 2.0, max_wait_s: float = 60.0
) -> Iterator[Any]:
    """Every record of `topic` from the beginning to its current end, then stop."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=CLIENT_ID,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(idle_timeout_s * 1000),
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + max_wait_s
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    yield record
                    if record.offset + 1 >= end[tp]:
                        remaining.discard(tp)
            for tp in list(remaining):
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()


def _committed_offsets(
    admin: KafkaAdminClient, group_id: str, tps: list[TopicPartition], timeout_s: float = 30.0
) -> dict[TopicPartition, Any]:
    """The group's committed offsets; waits out a coordinator that is still starting (the
    broker creates __consumer_offsets on the first group lookup)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin.list_group_offsets({group_id: tps}).get(group_id, {})
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def group_lag(bootstrap: str, group_id: str, topics: list[str]) -> int:
    """Records in `topics` not yet committed by consumer group `group_id`."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id=CLIENT_ID)
    admin = admin_client(bootstrap)
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return 0
        end = consumer.end_offsets(tps)
        committed = _committed_offsets(admin, group_id, tps)
        lag = 0
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, end[tp] - done)
        return lag
    finally:
        consumer.close()
        admin.close()
