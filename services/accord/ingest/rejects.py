"""A partner's rejects: the file written beside its input, and its rejects topic read back.

`RejectsFile` writes one entry per rejected row, with every problem (field, rule, plain
message) and the row as it was sent, so the data officer can fix the rows and publish
the file again (the `accord_*` columns are not fields of any dataset, so they are
ignored then):

* CSV (`.csv`): `accord_row`, `accord_problems`, `accord_fields`, `accord_rules`,
  `accord_messages` (problems joined with " | "), then the input's own columns, then
  `accord_original` (the raw line, only for a row that could not be split into
  columns). Every cell that a spreadsheet would run as a formula (starting with =, +,
  -, @, a tab or a carriage return) is written with a leading apostrophe, which
  spreadsheets show as text.
* JSON Lines (`.jsonl`): one object per row, `{"row", "location", "problems": [{"field",
  "rule", "message"}], "values", "original"}`.

The file holds personal data (the rows themselves), so it is created 0600; it is the
partner's own data, written where the partner keeps the input.

`read_rejects` reads `rejects.<org>` from the beginning or from a time, as that
organisation's principal (only it and the hub's writers may touch the topic).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final

from accord.ingest.readers import PublishInputError

__all__ = [
    "FORMULA_START",
    "RejectsFile",
    "cell_safe",
    "parse_since",
    "problems_of_record",
    "read_rejects",
    "rejects_format",
]

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
ACCORD_COLUMNS: Final = (
    "accord_row",
    "accord_problems",
    "accord_fields",
    "accord_rules",
    "accord_messages",
)
_JOIN: Final = " | "


def cell_safe(value: Any) -> str:
    """A value as a CSV cell no spreadsheet runs as a formula (OWASP's advice: a leading
    apostrophe before =, +, -, @, tab and carriage return)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def rejects_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise PublishInputError(
        f"--rejects {path.name}: the rejects file is .csv or .jsonl (by its extension)"
    )


def _private(path: Path) -> IO[str]:
    """A new file readable by its owner only (replacing one that was there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


@dataclass
class RejectsFile:
    """Writes rejected rows as they come (nothing is held in memory); `close` when done."""

    path: Path
    header: list[str] | None  # the input's columns (None: JSON Lines input)
    rows: int = 0

    def __post_init__(self) -> None:
        self.format = rejects_format(self.path)
        self._handle: IO[str] | None = None
        self._writer: Any = None

    def _open(self) -> None:
        self._handle = _private(self.path)
        if self.format == "csv":
            self._writer = csv.writer(self._handle)
            columns = [c for c in (self.header or []) if c]
            self._writer.writerow([*ACCORD_COLUMNS, *map(cell_safe, columns), "accord_original"])

    def write(
        self,
        label: str,
        location: str,
        problems: list[dict[str, Any]],
        values: dict[str, Any],
        original: bytes,
    ) -> None:
        if self._handle is None:
            self._open()
        assert self._handle is not None
        self.rows += 1
        text = original.decode("utf-8", errors="replace")
        if self.format == "jsonl":
            entry = {
                "row": label,
                "location": location,
                "problems": problems,
                "values": values or None,
                "original": None if values else text,
            }
            self._handle.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            return
        columns = [c for c in (self.header or []) if c]
        cells = [
            label,
            len(problems),
            _JOIN.join(p["field"] or "(row)" for p in problems),
            _JOIN.join(p["rule"] for p in problems),
            _JOIN.join(p["message"] for p in problems),
            *(values.get(c) for c in columns),
            "" if values and columns else text,
        ]
        self._writer.writerow([cell_safe(cell) for cell in cells])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# --- the rejects topic ---------------------------------------------------------------


def problems_of_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every problem of a rejects record; one from its reason for a record written
    before `problems` existed (or by a stage that found one)."""
    problems = record.get("problems") or []
    if problems:
        return [dict(p) for p in problems]
    return [
        {
            "field": record.get("field"),
            "rule": record.get("reason_code") or "",
            "message": record.get("reason") or "",
        }
    ]


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'2h', '3d', '90m', '1w' ago, or an ISO 8601 date or time (UTC when it has no zone)."""
    now = now or datetime.now(UTC)
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    value = text.strip()
    if value[:-1].isdigit() and value[-1:].lower() in units:
        return now - timedelta(**{units[value[-1].lower()]: int(value[:-1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PublishInputError(
            f"--since {text!r}: give a time (2026-11-30 or 2026-11-30T09:00) or an age "
            "(90m, 12h, 3d, 1w)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_rejects(
    settings: Any,
    serde: Any,
    org: str,
    since: datetime | None = None,
    timeout_s: float = 15.0,
) -> Iterator[dict[str, Any]]:
    """Every record of `rejects.<org>` (from `since`, else from the start) up to the
    topic's end now, decoded, signed in with `settings` (the organisation's own)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    from accord.core.errors import InfrastructureError
    from accord.core.kafka import connection
    from accord.core.topics import Topics

    topic = Topics(settings).rejects(org)
    config = {
        **connection(settings).confluent(),
        "group.id": f"{settings.topic_prefix}{org}.rejects-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    try:
        consumer = Consumer(config)
    except KafkaException as exc:
        raise InfrastructureError(f"cannot create a Kafka consumer: {exc}") from exc
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s)
        except KafkaException as exc:
            raise InfrastructureError(
                f"Kafka at {settings.bootstrap_servers} unreachable: {exc}"
            ) from exc
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise PublishInputError(
                f"{topic} does not exist or {org} may not read it: is {org} registered "
                f"(`accord partner add {org}`)?"
            )
        partitions = [TopicPartition(topic, p) for p in sorted(info.partitions)]
        if since is not None:
            millis = int(since.timestamp() * 1000)
            wanted = [TopicPartition(topic, p.partition, millis) for p in partitions]
            starts = consumer.offsets_for_times(wanted, timeout=timeout_s)
        else:
            starts = [TopicPartition(topic, p.partition, OFFSET_BEGINNING) for p in partitions]
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(p, timeout=timeout_s)
            ends[p.partition] = high
        remaining = {
            tp.partition
            for tp in starts
            if tp.offset >= 0
            and tp.offset < ends[tp.partition]
            or (tp.offset == OFFSET_BEGINNING and ends[tp.partition] > 0)
        }
        if not remaining:
            return
        consumer.assign([tp for tp in starts if tp.partition in remaining])
        deadline = datetime.now(UTC) + timedelta(seconds=max(timeout_s, 60.0))
        while remaining and datetime.now(UTC) < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error() is not None:
                continue
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
            _, record = serde.decode_as(message.value(), Topics.subject(topic), "QuarantinedRecord")
            yield record
    finally:
        consumer.close()
