"""Publishing the bench's workload: fast, or at a steady rate, streamed from its cache."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaException, Producer

from accord.core.credentials import ADMIN
from accord.core.errors import InfrastructureError
from accord.core.kafka import confluent_config
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import DATASET_RECORDS, Topics
from accord.synthetic.workload import Event, Workload

_SCHEMA_ID = struct.Struct(">I")


def producer(settings: Settings) -> Producer:
    try:
        return Producer(
            confluent_config(
                settings,
                **{
                    "client.id": "accord-bench",
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 5,
                    "compression.type": "lz4",
                },
            )
        )
    except KafkaException as exc:
        raise InfrastructureError(f"cannot create a Kafka producer: {exc}") from exc


def publish(
    settings: Settings,
    events: Workload | Iterable[Event],
    *,
    rate: float | None = None,
    on_sent: Callable[[Event, float], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Publish to the partner topics of `settings`' prefix; at `rate` events/s if given.

    A workload is read from its cache as it is sent, a chunk at a time. A steady rate is
    kept in 5 ms ticks against the clock, so a slow tick is caught up rather than
    lowering the offered load. Returns the number acknowledged.
    """
    topics = Topics(settings)
    if not isinstance(events, Workload):
        events = list(events)
    # The worker accepts only schema ids registered under the topic's own subject. The
    # same schema has the same id under every subject of a registry; should this one
    # have given it another id than the cached events carry, they are framed anew.
    serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
    headers: dict[tuple[str, str], bytes] = {}
    for org, dataset in partners(events):
        schema_id, _ = serde.writer(
            Topics.subject(topics.partner(org, dataset)), DATASET_RECORDS[dataset]
        )
        headers[(org, dataset)] = b"\x00" + _SCHEMA_ID.pack(schema_id)
    kafka = producer(settings)
    acknowledged = failed = 0

    def delivered(error: object, _message: object) -> None:
        nonlocal acknowledged, failed
        if error is None:
            acknowledged += 1
        else:
            failed += 1

    started = time.monotonic()
    for sent, event in enumerate(events):
        value = event.value
        header = headers[(event.org, event.dataset)]
        if value[:5] != header:
            value = header + value[5:]
        if rate is not None:
            due = started + sent / rate
            while (wait := due - time.monotonic()) > 0:
                kafka.poll(min(wait, 0.005))
        while True:
            try:
                kafka.produce(
                    topics.partner(event.org, event.dataset),
                    key=event.key,
                    value=value,
                    on_delivery=delivered,
                )
                break
            except BufferError:
                kafka.poll(0.05)
        if on_sent is not None:
            on_sent(event, time.time())
        kafka.poll(0)
        if progress is not None and sent % 1000 == 999:
            progress(1000)
    remaining = kafka.flush(120)
    if failed or remaining:
        raise InfrastructureError(f"Kafka did not acknowledge {failed + remaining} bench events")
    return acknowledged


def partners(events: Workload | Iterable[Event]) -> list[tuple[str, str]]:
    """The (org, dataset) pairs the events are published as; a workload knows its own."""
    if isinstance(events, Workload):
        return sorted(events.partners())
    return sorted({(e.org, e.dataset) for e in events})


def partner_topics(settings: Settings, events: Workload | Iterable[Event]) -> list[str]:
    topics = Topics(settings)
    return sorted({topics.partner(org, dataset) for org, dataset in partners(events)})
