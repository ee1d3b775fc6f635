"""The benchmark's events: a realistic mix, encoded once, published fast or at a steady rate.

The mix is the demo's: NHS boards' shielding-list entries, councils' support requests
(40% without a CHI number, with nicknames and typos, some about people not on the list)
and outcomes from councils and a third-sector network. Rows go through the same
validation as `accord publish`, then into the Confluent wire format, so every mode of
the benchmark reads exactly what partners would publish. Encoded workloads are cached
under the state directory: generating 200,000 events takes longer than the runs.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer

from accord.core.credentials import ADMIN, private_dir
from accord.core.errors import InfrastructureError
from accord.core.kafka import confluent_config
from accord.core.scotland import org_id
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings
from accord.core.topics import (
    DATASET_RECORDS,
    SHIELDING_LIST,
    SUPPORT_OUTCOME,
    SUPPORT_REQUEST,
    Topics,
)
from accord.ingest.pipeline import Accepted, Location, Pipeline
from accord.synthetic.people import generate_shielding_list
from accord.synthetic.requests import generate_requests

# Requests and outcomes the demo's generator adds per listed person (836 + 423 per 5,000).
EVENTS_PER_PERSON = 1.25
CACHE_VERSION = 2  # 2: partner records keyed by event id


@dataclass(frozen=True)
class Event:
    """One partner message: who publishes it, which dataset, its id, key and wire bytes."""

    org: str
    dataset: str
    event_id: str
    key: bytes
    value: bytes


def people_for(events: int) -> int:
    return max(1, round(events / EVENTS_PER_PERSON))


def _rows(events: int, seed: int) -> list[tuple[str, str, dict[str, str]]]:
    """(org, dataset, row) in publishing order: lists first, then requests and outcomes."""
    people = generate_shielding_list(people_for(events), seed=seed, bad_rows=0)
    rows = [(org_id(row["health_board"]), SHIELDING_LIST, row) for row in people]
    requests, outcomes = generate_requests(people, seed=seed)
    for org, council_rows in requests.items():
        rows.extend((org, SUPPORT_REQUEST, row) for row in council_rows)
    for org, outcome_rows in outcomes.items():
        rows.extend((org, SUPPORT_OUTCOME, row) for row in outcome_rows)
    return rows


def build(settings: Settings, serde: AvroSerde, events: int, seed: int) -> list[Event]:
    """At most `events` valid, encoded events (the generator's mix, trimmed to size)."""
    topics = Topics(settings)
    pipelines: dict[tuple[str, str], Pipeline] = {}
    encoded: list[Event] = []
    for org, dataset, row in _rows(events, seed):
        pipeline = pipelines.setdefault((org, dataset), Pipeline(org, dataset))
        outcome = pipeline.process(row, Location("BENCH", "generated", "row"), b"")
        if not isinstance(outcome, Accepted):
            continue
        subject = Topics.subject(topics.partner(org, dataset))
        value = serde.encode(subject, DATASET_RECORDS[dataset], outcome.event)
        encoded.append(Event(org, dataset, outcome.event_id, outcome.key, value))
    # Keep the lists ahead of requests and outcomes, as in real life; trim the tail.
    return encoded[:events]


def load(
    settings: Settings, events: int, seed: int, progress: Callable[[str], None]
) -> list[Event]:
    """The workload, from the cache when this size and seed were built before."""
    path = settings.state_dir / "bench" / f"workload-v{CACHE_VERSION}-{events}-{seed}.pickle"
    if path.is_file():
        with path.open("rb") as handle:
            return pickle.load(handle)
    progress(f"generating {events:,} events (cached for later runs)")
    serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
    workload = build(settings, serde, events, seed)
    private_dir(path.parent)
    temporary = path.with_suffix(".tmp")
    with temporary.open("wb") as handle:
        pickle.dump(workload, handle, protocol=pickle.HIGHEST_PROTOCOL)
    temporary.replace(path)
    return workload


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
    events: Iterable[Event],
    *,
    rate: float | None = None,
    on_sent: Callable[[Event, float], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Publish to the partner topics of `settings`' prefix; at `rate` events/s if given.

    A steady rate is kept in 5 ms ticks against the clock, so a slow tick is caught up
    rather than lowering the offered load. Returns the number acknowledged.
    """
    topics = Topics(settings)
    events = list(events)
    # The worker accepts only schema ids registered under the topic's own subject; the
    # cached events carry the ids of the same schemas, which the registry keeps.
    serde = AvroSerde(registry_client(settings, ADMIN), settings.schemas_dir)
    for topic in partner_topics(settings, events):
        serde.writer(Topics.subject(topic), DATASET_RECORDS[topics.parse_partner(topic)[1]])
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
        if rate is not None:
            due = started + sent / rate
            while (wait := due - time.monotonic()) > 0:
                kafka.poll(min(wait, 0.005))
        while True:
            try:
                kafka.produce(
                    topics.partner(event.org, event.dataset),
                    key=event.key,
                    value=event.value,
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


def partner_topics(settings: Settings, events: Iterable[Event]) -> list[str]:
    topics = Topics(settings)
    return sorted({topics.partner(e.org, e.dataset) for e in events})
