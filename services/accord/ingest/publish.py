"""`accord publish`: a partner's file into its partner topic, rejected rows into quarantine.

Every row is either published (acknowledged by the broker: acks=all, idempotent producer)
or quarantined with its original text, line number and every reason found. Event ids are
derived from the partner, dataset and row content, so publishing the same file twice
yields the same ids and the same keys.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from accord.core.errors import AccordError, InfrastructureError
from accord.core.kafka import acknowledged_producer, ensure_topics
from accord.core.logging import get_logger
from accord.core.pseudonym import person_key
from accord.core.serde import AvroSerde, SchemaRegistryClient
from accord.core.settings import Settings
from accord.core.topics import DATASET_RECORDS, SHIELDING_LIST, Topics, is_org_id
from accord.ingest.validation import RowInvalid, validate_shielding_row

log = get_logger("accord.publish")

EVENT_NAMESPACE = uuid.UUID("0b5f3c8e-7d1a-4f26-b1e4-5a9c2d7e6f10")
SCHEMA_VERSION = 1


class PublishInputError(AccordError):
    """The command was given something it cannot publish (unknown dataset, missing file)."""


@dataclass
class PublishReport:
    published: int = 0
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    topic: str = ""

    @property
    def rows(self) -> int:
        return self.published + self.quarantined


@dataclass(frozen=True)
class SourceRow:
    line_number: int
    values: dict[str, str | None]
    original: bytes
    problem: str | None = None  # a structural problem found while reading


def read_csv_rows(path: Path) -> Iterator[SourceRow]:
    """Rows of a CSV file with their line numbers and original text."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            return
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(cells)
            problem = None
            if len(cells) != len(header):
                problem = f"the row has {len(cells)} fields but the header has {len(header)}"
            values = {name: (cells[i] if i < len(cells) else None) for i, name in enumerate(header)}
            yield SourceRow(reader.line_num, values, buffer.getvalue().encode(), problem)


def event_id_for(org: str, dataset: str, record: dict[str, Any]) -> str:
    """A stable event id from the source record: the same row always gets the same id."""
    content = json.dumps(record, sort_keys=True, default=str)
    digest = hashlib.sha256(content.encode()).hexdigest()
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{org}|{dataset}|{digest}"))


def to_event(org: str, dataset: str, record: dict[str, Any]) -> dict[str, Any]:
    event = dict(record)
    event.update(
        event_id=event_id_for(org, dataset, record),
        occurred_at=datetime.combine(record["effective_date"], time(0, 0), tzinfo=UTC),
        source_org=org,
        schema_version=SCHEMA_VERSION,
    )
    return event


def quarantine_record(
    org: str,
    dataset: str,
    path: Path,
    row: SourceRow,
    code: str,
    reason: str,
    field_name: str | None,
) -> dict[str, Any]:
    return {
        "quarantine_id": str(uuid.uuid4()),
        "quarantined_at": datetime.now(UTC),
        "source_org": org,
        "dataset": dataset,
        "origin": "FILE",
        "location": f"{path.name} line {row.line_number}",
        "line_number": row.line_number,
        "original": row.original,
        "reason_code": code,
        "reason": reason,
        "field": field_name,
    }


def publish_file(
    settings: Settings,
    org: str,
    dataset: str,
    path: Path,
    progress: Callable[[int], None] | None = None,
) -> PublishReport:
    if not is_org_id(org):
        raise PublishInputError(f"--as {org!r} is not an organisation id (e.g. nhs-lothian)")
    if dataset not in DATASET_RECORDS:
        raise PublishInputError(
            f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASET_RECORDS))}"
        )
    if dataset != SHIELDING_LIST:
        raise PublishInputError(f"publishing {dataset} from files is not supported yet")
    if not path.is_file():
        raise PublishInputError(f"no such file: {path}")

    topics = Topics(settings)
    topic = topics.partner(org, dataset)
    ensure_topics(
        settings.bootstrap_servers,
        {topic: None, topics.quarantine: None},
        settings.topic_partitions,
    )
    serde = AvroSerde(SchemaRegistryClient(settings.schema_registry_url), settings.schemas_dir)
    record_name = DATASET_RECORDS[dataset]
    secret = settings.pseudonym_key.get_secret_value()
    producer = acknowledged_producer(settings.bootstrap_servers)
    report = PublishReport(topic=topic)
    futures: list[tuple[str, Any]] = []

    def quarantine(row: SourceRow, code: str, reason: str, field_name: str | None) -> None:
        record = quarantine_record(org, dataset, path, row, code, reason, field_name)
        value = serde.encode(Topics.subject(topics.quarantine), "QuarantinedRecord", record)
        key = f"{org}|{path.name}|{row.line_number}".encode()
        futures.append(("quarantined", producer.send(topics.quarantine, key=key, value=value)))
        report.reasons[code] += 1

    try:
        for row in read_csv_rows(path):
            if row.problem:
                quarantine(row, "row_shape", row.problem, None)
            else:
                try:
                    record = validate_shielding_row(row.values)
                except RowInvalid as exc:
                    first = exc.errors[0]
                    quarantine(row, first.rule, str(exc), first.field)
                else:
                    event = to_event(org, dataset, record)
                    key = person_key(secret, record["chi_number"]).encode()
                    value = serde.encode(Topics.subject(topic), record_name, event)
                    futures.append(("published", producer.send(topic, key=key, value=value)))
            if progress:
                progress(1)
        producer.flush()
        for outcome, future in futures:
            future.get(timeout=60)  # raises if the broker did not acknowledge
            setattr(report, outcome, getattr(report, outcome) + 1)
    except KafkaError as exc:
        raise InfrastructureError(
            f"Kafka did not acknowledge every record ({report.published} published, "
            f"{report.quarantined} quarantined acknowledged before the failure): {exc}"
        ) from exc
    finally:
        producer.close(timeout=10)
    log.info(
        "file_published", topic=topic, published=report.published, quarantined=report.quarantined
    )
    return report
