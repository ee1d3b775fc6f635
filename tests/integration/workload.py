"""A small, deterministic mix of partner events for the case tests: an NHS shielding list,
council support requests (with and without CHI) and outcomes, published as partners do."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
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
from accord.demo.synthetic import chi_for, write_csv
from accord.ingest.publish import publish_file

from .conftest import decoded

LOTHIAN = ("City of Edinburgh", "East Lothian", "Midlothian", "West Lothian")
POSTCODES = {
    "City of Edinburgh": "EH1 1AA",
    "East Lothian": "EH21 6AA",
    "Midlothian": "EH22 1AA",
    "West Lothian": "EH54 6AA",
}
START = datetime(2020, 6, 1, tzinfo=UTC)


def people(count: int) -> list[dict[str, str]]:
    rows, serial = [], 0
    for i in range(count):
        dob = date(1940 + i % 40, 1 + i % 12, 1 + i % 28)
        chi = None
        while chi is None:
            chi = chi_for(dob, serial % 1000)
            serial += 1
        council = LOTHIAN[i % len(LOTHIAN)]
        rows.append(
            {
                "chi_number": chi,
                "given_name": f"Given{i}",
                "family_name": f"Family{i}",
                "date_of_birth": dob.isoformat(),
                "address_line1": f"{i} High Street",
                "address_line2": "",
                "town": "",
                "postcode": POSTCODES[council],
                "council_area": council,
                "health_board": "NHS Lothian",
                "clinical_risk_group": "SPECIFIC_CANCERS",
                "shielding_status": "SHIELDING",
                "contact_phone": "",
                "effective_date": "2020-06-01",
            }
        )
    return rows


def event_base(org: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at,
        "source_org": org,
        "schema_version": 1,
    }


def requests_for(rows: list[dict[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    """(council org, SupportRequest) for every second person; CHI given on most."""
    out = []
    for i, row in enumerate(rows):
        if i % 2:
            continue
        org = org_id(row["council_area"])
        out.append(
            (
                org,
                {
                    **event_base(org, START + timedelta(hours=i)),
                    "request_id": f"REQ-{i}",
                    "chi_number": row["chi_number"],
                    "nhs_number": None,
                    "given_name": row["given_name"],
                    "family_name": row["family_name"],
                    "date_of_birth": date.fromisoformat(row["date_of_birth"]),
                    "address_line1": row["address_line1"],
                    "postcode": row["postcode"],
                    "council_area": row["council_area"],
                    "contact_phone": None,
                    "lives_alone": i % 6 == 0,
                    "needs": ["FOOD", "MEDICINE"] if i % 4 == 0 else ["FOOD"],
                    "urgency": "IMMEDIATE" if i % 8 == 0 else "ROUTINE",
                    "channel": "HELPLINE",
                },
            )
        )
    return out


def outcomes_for(requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """A food delivery for every second request."""
    out = []
    for n, (org, request) in enumerate(requests):
        if n % 2:
            continue
        out.append(
            (
                org,
                {
                    **event_base(org, request["occurred_at"] + timedelta(days=1)),
                    "request_id": request["request_id"],
                    "request_org": None,
                    "need": "FOOD",
                    "outcome": "DELIVERED",
                },
            )
        )
    return out


def publish_workload(settings: Settings, serde: AvroSerde, tmp_path: Path, count: int) -> dict:
    """Publish the whole mix; returns what was sent."""
    rows = people(count)
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
