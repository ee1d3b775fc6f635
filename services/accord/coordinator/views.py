"""A coordinator's support list, read from the recipient topic as their own system would.

The recipient topic is compacted and keyed by case: the latest record per key is the
case, a tombstone removes it. Exports neutralise spreadsheet formulas, because names and
addresses come from other organisations' systems and a cell starting with `=` would run
in the coordinator's spreadsheet.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from accord.core.kafka import consumer as kafka_consumer
from accord.core.kafka import read_topic
from accord.core.scotland import COUNCIL_AREAS, org_id
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.core.topics import Topics

PRIORITY_RANK = {"URGENT": 0, "HIGH": 1, "MEDIUM": 2, "ROUTINE": 3}
COLUMNS = (
    "priority",
    "needs",
    "latest_outcome",
    "given_name",
    "family_name",
    "address_line1",
    "postcode",
    "contact_phone",
    "priority_reasons",
    "opened_at",
    "agreement_id",
    "case_key",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def recipient_for(council: str) -> str:
    """The organisation id of a council given by name ("City of Edinburgh") or id."""
    for name in COUNCIL_AREAS:
        if council.strip().casefold() in (name.casefold(), org_id(name)):
            return org_id(name)
    raise ValueError(
        f"unknown council {council!r}; use one of Scotland's 32 council areas, e.g. 'Fife'"
    )


def apply(
    view: dict[str, dict[str, Any]], key: bytes, value: bytes | None, serde: AvroSerde
) -> dict[str, Any] | None:
    """Apply one record of the compacted topic to the view; returns the new case or None."""
    case_key = key.decode()
    if value is None:
        view.pop(case_key, None)
        return None
    case = serde.decode(value)[1]
    view[case_key] = case
    return case


def current_list(settings: Settings, serde: AvroSerde, recipient: str) -> dict[str, dict[str, Any]]:
    view: dict[str, dict[str, Any]] = {}
    for message in read_topic(settings, Topics(settings).share(recipient)):
        apply(view, message.key, message.value, serde)
    return view


def ordered(view: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        view.values(),
        key=lambda c: (
            PRIORITY_RANK.get(c.get("priority") or "ROUTINE", 9),
            c.get("opened_at") is None,
            c.get("opened_at") or 0,
            c["case_key"],
        ),
    )


def cell(case: dict[str, Any], column: str) -> str:
    value = case.get(column)
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(
            str(v).lower().replace("_", " ") if column == "needs" else str(v) for v in value
        )
    if column in ("priority", "latest_outcome"):
        return str(value).lower().replace("_", " ")
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="minutes") if hasattr(value, "hour") else value.isoformat()
    return str(value)


def neutralise(text: str) -> str:
    """Make a cell inert in spreadsheets: a leading formula character is quoted."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_csv(cases: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for case in cases:
            writer.writerow([neutralise(cell(case, column)) for column in COLUMNS])


def follow(
    settings: Settings, serde: AvroSerde, recipient: str, view: dict[str, dict[str, Any]]
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Updates after the current end of the topic, as (case key, case or None if removed)."""
    topic = Topics(settings).share(recipient)
    consumer = kafka_consumer(settings, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        while True:
            for records in consumer.poll(timeout_ms=1000).values():
                for message in records:
                    yield message.key.decode(), apply(view, message.key, message.value, serde)
    finally:
        consumer.close()
