"""Nothing lost, nothing doubled: 100,000 rows published while the broker restarts.

A synthetic board list of 100,000 rows (700 deliberately bad) is published with
`publish_file`; when a third of the rows have been handed to the producer, a second
thread stops the broker (`accord stack down --only kafka`) and starts it again. Then we
count on the real topics: every valid row is in the partner topic exactly once (distinct
event ids, keyed by event id, no duplicate messages), every bad row is in the rejects
with its line; and publishing the same file again adds no new event id and no new key,
so a compacted view holds each record once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from accord.core.kafka import confluent_config
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.ingest.publish import publish_file
from accord.stack import local
from accord.synthetic.people import generate_shielding_list_with_labels, write_csv

pytestmark = pytest.mark.integration

ROWS = 100_000
BAD_ROWS = 700
ORG = "nhs-lothian"


def read_all(settings, topic: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of every message in `topic`, from the beginning to its current end."""
    consumer = Consumer(
        confluent_config(settings, **{"group.id": "accord-count", "enable.auto.commit": False})
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        remaining = {p for p, end in ends.items() if end > 0}
        messages: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error():
                    continue
                messages.append((message.key(), message.value()))
                if message.offset() + 1 >= ends[message.partition()]:
                    remaining.discard(message.partition())
        assert not remaining, f"{topic}: partitions {remaining} not read to their end"
        return messages
    finally:
        consumer.close()


def restart_broker_when(
    ready: threading.Event, settings: Settings, log: list[str]
) -> threading.Thread:
    def restart() -> None:
        ready.wait(timeout=300)
        started = time.monotonic()
        local.down(settings, log.append, only=["kafka"])
        local.up(settings, log.append, only=["kafka"])
        log.append(f"restart took {time.monotonic() - started:.1f}s")

    thread = threading.Thread(target=restart, name="restart-broker")
    thread.start()
    return thread


def test_100k_rows_survive_a_broker_restart_once_each(
    settings: Settings, serde: AvroSerde, tmp_path: Path
) -> None:
    started = time.monotonic()
    rows, labels = generate_shielding_list_with_labels(ROWS, bad_rows=BAD_ROWS, seed=100)
    path = tmp_path / "lothian-100k.csv"
    write_csv(rows, path)
    generated = time.monotonic() - started
    valid = [row for row, label in zip(rows, labels, strict=True) if label is None]
    bad_lines = {index + 2 for index, label in enumerate(labels) if label is not None}
    assert len(valid) == ROWS - BAD_ROWS
    assert len({row["chi_number"] for row in rows}) == ROWS  # the generator's CHIs are unique

    handed_over = 0
    third = threading.Event()
    restart_log: list[str] = []

    def progress(n: int) -> None:
        nonlocal handed_over
        handed_over += n
        if handed_over == ROWS // 3:
            third.set()

    restarter = restart_broker_when(third, settings, restart_log)
    try:
        publish_started = time.monotonic()
        report = publish_file(settings, ORG, "shielding-list", path, progress)
        publish_s = time.monotonic() - publish_started
    finally:
        third.set()
        restarter.join(timeout=180)
    assert any("kafka" in line and "stopped" in line for line in restart_log), restart_log
    assert any("kafka" in line and "started" in line for line in restart_log), restart_log
    assert (report.published, report.quarantined) == (ROWS - BAD_ROWS, BAD_ROWS)

    topics = Topics(settings)
    topic = topics.partner(ORG, "shielding-list")
    messages = read_all(settings, topic)
    event_ids = {str(serde.decode(value)[1]["event_id"]) for _, value in messages}
    keys = {key for key, _ in messages}
    assert len(event_ids) == len(valid)
    assert len(messages) == len(valid)  # the idempotent producer wrote nothing twice
    assert keys == {event_id.encode() for event_id in event_ids}  # no identifier, no secret

    quarantine = [serde.decode(value)[1] for _, value in read_all(settings, topics.rejects(ORG))]
    assert len(quarantine) == BAD_ROWS
    assert {entry["line_number"] for entry in quarantine} == bad_lines
    assert {entry["origin"] for entry in quarantine} == {"FILE"}

    # The same file again: every message is rewritten, but no new id and no new key.
    republish_started = time.monotonic()
    again = publish_file(settings, ORG, "shielding-list", path)
    republish_s = time.monotonic() - republish_started
    assert (again.published, again.quarantined) == (ROWS - BAD_ROWS, BAD_ROWS)
    messages = read_all(settings, topic)
    assert len(messages) == 2 * len(valid)
    assert {str(serde.decode(value)[1]["event_id"]) for _, value in messages} == event_ids
    assert {key for key, _ in messages} == keys
    quarantine_ids = {
        str(serde.decode(value)[1]["quarantine_id"])
        for _, value in read_all(settings, topics.rejects(ORG))
    }
    assert len(quarantine_ids) == BAD_ROWS  # quarantine ids are stable too

    print(
        f"\n100k restart: generated in {generated:.1f}s; published {report.published} and "
        f"quarantined {report.quarantined} in {publish_s:.1f}s ({ROWS / publish_s:.0f} rows/s) "
        f"with {restart_log[-1]}; republished in {republish_s:.1f}s "
        f"({ROWS / republish_s:.0f} rows/s)"
    )
