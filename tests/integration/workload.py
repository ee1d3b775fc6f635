"""A small, deterministic mix of partner events for the case tests, published as partners
do: an NHS shielding list, council support requests and outcomes (built by
`accord.synthetic.records`)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from accord.core.kafka import acknowledged_producer, ensure_topics
from accord.core.scotland import org_id
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import (
    SHIELDING_LIST,
    SUPPORT_OUTCOME,
    SUPPORT_REQUEST,
    Topics,
)
from accord.ingest.publish import publish_file
from accord.synthetic.people import write_csv
from accord.synthetic.records import LOTHIAN, lothian_people, outcomes_for, requests_for

from .conftest import decoded


def publish_workload(settings: Settings, serde: AvroSerde, tmp_path: Path, count: int) -> dict:
    """Publish the whole mix; returns what was sent."""
    rows = lothian_people(count)
    path = tmp_path / f"lothian-{uuid.uuid4().hex[:6]}.csv"
    write_csv(rows, path)
    publish_file(settings, "nhs-lothian", SHIELDING_LIST, path)
    requests = requests_for(rows)
    outcomes = outcomes_for(requests)
    send_native(settings, serde, SUPPORT_REQUEST, "SupportRequest", requests)
    send_native(settings, serde, SUPPORT_OUTCOME, "SupportOutcome", outcomes)
    return {"people": rows, "requests": requests, "outcomes": outcomes}


def send_native(
    settings: Settings,
    serde: AvroSerde,
    dataset: str,
    record: str,
    events: list[tuple[str, dict[str, Any]]],
) -> None:
    """As a council's own system would: Avro in the wire format straight to its topic."""
    topics = Topics(settings)
    names = {topics.partner(org, dataset) for org, _ in events}
    ensure_topics(settings, dict.fromkeys(names), settings.partner_topic_partitions)
    producer = acknowledged_producer(settings)
    futures = []
    for org, event in events:
        topic = topics.partner(org, dataset)
        value = serde.encode(Topics.subject(topic), record, event)
        futures.append(producer.send(topic, key=event["event_id"].encode(), value=value))
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    producer.close()


def council_lists(settings: Settings, serde: AvroSerde) -> dict[str, dict[str, tuple]]:
    """Each council's compacted list, reduced to what a coordinator sees."""
    lists = {}
    for council in LOTHIAN:
        view: dict[str, tuple] = {}
        for key, case in decoded(settings, serde, Topics(settings).share(org_id(council))):
            if case is None:
                view.pop(key.decode(), None)
            else:
                view[key.decode()] = (
                    tuple(case["needs"]),
                    case["priority"],
                    case["latest_outcome"],
                    case["given_name"],
                    case["family_name"],
                    case["postcode"],
                )
        lists[council] = view
    return lists


def list_differences(actual: dict[str, dict], expected: dict[str, dict]) -> list[str]:
    """Per council: cases missing, extra, or differing (pseudonymous keys, synthetic data)."""
    lines = []
    for council in sorted(set(actual) | set(expected)):
        got, want = actual.get(council, {}), expected.get(council, {})
        lines += [
            f"{council}: missing {key[:12]} {want[key]}" for key in sorted(set(want) - set(got))
        ]
        lines += [f"{council}: extra {key[:12]} {got[key]}" for key in sorted(set(got) - set(want))]
        lines += [
            f"{council}: {key[:12]} is {got[key]}, expected {want[key]}"
            for key in sorted(set(got) & set(want))
            if got[key] != want[key]
        ]
    return lines
