"""The audit index: `hub.audit.decisions` folded into SQLite under the state dir, so
"who received data about this person" and "what went out under this agreement" answer in
seconds over millions of decisions.

Each row is one recipient's decision. An audit record of a case decision lists every
recipient of the case (`recipients`) and gives a row each; a record written before that
gives one row (`accord.core.auditrecords.recipient_decisions` reads both).

The index remembers, per partition, the next offset to read, in the same transaction as
the rows it wrote: after a crash it resumes exactly where its last commit ended. Decision
ids are the primary key, so a decision the worker re-sent after a retry is stored once.
Rows hold what the audit record holds (pseudonymous subject keys, never identifiers).
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from accord.core.auditrecords import recipient_decisions
from accord.core.credentials import private_dir
from accord.core.errors import AccordError, InfrastructureError
from accord.core.kafka import confluent_config
from accord.core.logging import get_logger
from accord.core.serde import AvroSerde, unframe
from accord.core.settings import Settings
from accord.core.topics import Topics

log = get_logger("accord.governance.audit")

SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY, decided_at INTEGER NOT NULL, source_org TEXT, dataset TEXT,
    recipient TEXT, purpose TEXT, agreement_id TEXT, agreement_version INTEGER,
    allow INTEGER NOT NULL, fields_released TEXT NOT NULL, obligations TEXT NOT NULL,
    reasons TEXT NOT NULL, policy_revision TEXT, subject_key TEXT NOT NULL,
    clauses TEXT NOT NULL DEFAULT '', principles TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS decisions_by_subject ON decisions (subject_key, decided_at);
CREATE INDEX IF NOT EXISTS decisions_by_agreement ON decisions (agreement_id, decided_at);
"""
INSERT = "INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
# Columns added after the first release; an older index gains them (empty) on connect.
ADDED_COLUMNS = {
    "clauses": "TEXT NOT NULL DEFAULT ''",
    "principles": "TEXT NOT NULL DEFAULT ''",
}


def index_path(settings: Settings) -> Path:
    return settings.state_dir / "audit" / f"{Topics(settings).audit}.sqlite3"


def connect(path: Path) -> sqlite3.Connection:
    private_dir(path.parent)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    # Random keys (decision ids, subject keys) touch pages all over the indexes; a large
    # page cache keeps a million-row index build in memory instead of on the disk.
    db.execute("PRAGMA cache_size=-262144")
    db.executescript(SCHEMA)
    present = {row[1] for row in db.execute("PRAGMA table_info(decisions)")}
    for name, definition in ADDED_COLUMNS.items():
        if name not in present:
            db.execute(f"ALTER TABLE decisions ADD COLUMN {name} {definition}")
    return db


SEPARATOR = "\x1f"  # joins list columns; never part of a field name or a reason


def _plain(schema: Any) -> Any:
    """The schema without logical types: the same bytes decode to plain ints and strings,
    which is what the index stores, without building datetime and UUID objects."""
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_plain(item) for item in schema]
    return schema


class PlainDecoder:
    """Decodes audit records by their registry schema id, cached per id."""

    def __init__(self, serde: AvroSerde) -> None:
        self.registry = serde.registry
        self._schemas: dict[int, Any] = {}

    def decode(self, data: bytes | None) -> dict[str, Any]:
        schema_id, body = unframe(data)
        if schema_id not in self._schemas:
            text = self.registry.schema_by_id(schema_id)
            self._schemas[schema_id] = fastavro.parse_schema(_plain(json.loads(text)))
        return fastavro.schemaless_reader(io.BytesIO(body), self._schemas[schema_id], None)


def row_of(record: dict[str, Any]) -> tuple:
    decided_at = record["decided_at"]
    if isinstance(decided_at, datetime):
        decided_at = int(decided_at.timestamp() * 1000)
    return (
        str(record["decision_id"]),
        decided_at,
        record.get("source_org"),
        record.get("dataset"),
        record.get("recipient") or "",
        record.get("purpose"),
        record.get("agreement_id") or "",
        record.get("agreement_version"),
        1 if record.get("allow") else 0,
        SEPARATOR.join(sorted(record.get("fields_released") or ())),
        SEPARATOR.join(record.get("obligations") or ()),
        SEPARATOR.join(record.get("reasons") or ()),
        record.get("policy_revision"),
        record["subject_key"],
        # Records written before the schema had them decode with the defaults ([]).
        SEPARATOR.join(record.get("clauses") or ()),
        SEPARATOR.join(record.get("principles") or ()),
    )


def rows_of(record: dict[str, Any]) -> list[tuple]:
    """The index rows of one audit record of either shape: one per recipient decision."""
    return [row_of(decision) for decision in recipient_decisions(record)]


def split(value: str) -> list[str]:
    return value.split(SEPARATOR) if value else []


@dataclass
class IndexRun:
    indexed: int = 0  # recipient decisions (rows)
    records: int = 0  # audit records read
    skipped: int = 0
    seconds: float = 0.0


def _consumer(settings: Settings) -> Consumer:
    # librdkafka's consumer reads a million small records in seconds, where the pure-Python
    # client takes minutes; offsets are ours (in SQLite), so the group id is never used.
    return Consumer(
        confluent_config(
            settings,
            **{
                "group.id": "accord-audit-index",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # The worker writes the audit in transactions: the end of a partition comes
                # after commit markers no message stands for, so the end is signalled.
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
            },
        )
    )


def catch_up(
    settings: Settings,
    serde: AvroSerde,
    *,
    follow: bool = False,
    db_path: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IndexRun:
    """Index every audit record up to the topic's current end (or forever with follow)."""
    topic = Topics(settings).audit
    path = db_path or index_path(settings)
    db = connect(path)
    started = time.monotonic()
    run = IndexRun()
    consumer = _consumer(settings)
    decoder = PlainDecoder(serde)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        partitions = sorted(metadata.partitions) if metadata and not metadata.error else []
        if not partitions:
            return run
        stored = dict(
            db.execute("SELECT partition, next_offset FROM offsets WHERE topic = ?", (topic,))
        )
        position, end = {}, {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            position[p], end[p] = max(stored.get(p, 0), low), high
        consumer.assign([TopicPartition(topic, p, position[p]) for p in partitions])
        while follow or any(position[p] < end[p] for p in partitions):
            rows = []
            for message in consumer.consume(num_messages=20000, timeout=0.5):
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        p = message.partition()
                        position[p] = max(position[p], message.offset())
                        continue
                    raise InfrastructureError(f"reading {topic}: {message.error()}")
                position[message.partition()] = message.offset() + 1
                try:
                    rows.extend(rows_of(decoder.decode(message.value())))
                    run.records += 1
                except (AccordError, KeyError, ValueError, TypeError) as exc:
                    run.skipped += 1
                    log.warning(
                        "audit_record_unreadable",
                        partition=message.partition(),
                        offset=message.offset(),
                        # The hub's own errors name no value; others might quote one.
                        error=str(exc) if isinstance(exc, AccordError) else type(exc).__name__,
                    )
            with db:
                db.executemany(INSERT, rows)
                db.executemany(
                    "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                    [(topic, p, o) for p, o in position.items()],
                )
            run.indexed += len(rows)
            if on_progress and rows:
                on_progress(run.indexed)
    except (KafkaException, sqlite3.Error) as exc:
        raise InfrastructureError(f"audit index {path} from {topic}: {exc}") from exc
    finally:
        consumer.close()
        db.close()
    run.seconds = time.monotonic() - started
    log.info(
        "audit_indexed",
        topic=topic,
        records=run.records,
        indexed=run.indexed,
        seconds=round(run.seconds, 2),
    )
    return run


# --- queries -------------------------------------------------------------------------------


# A withdrawal (the gate's tombstone of an earlier share) is a deny whose first reason
# says "withdrawn:", in both record shapes (accord.core.auditrecords.outcome_of).
WITHDRAWN = "reasons LIKE 'withdrawn:%'"


@dataclass
class Receipt:
    recipient: str
    agreement_id: str
    agreement_version: int | None
    fields: list[str]
    first_at: datetime
    last_at: datetime
    times: int
    holds_now: bool = True  # the recipient's latest decision about the person is a share

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "agreement_id": self.agreement_id,
            "agreement_version": self.agreement_version,
            "fields": self.fields,
            "first_shared_at": _iso(self.first_at),
            "last_shared_at": _iso(self.last_at),
            "times": self.times,
            "holds_now": self.holds_now,
        }


@dataclass
class Retraction:
    """An earlier share withdrawn (tombstoned) from a recipient, when and why."""

    recipient: str
    agreement_id: str
    at: datetime
    reason: str
    principles: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "agreement_id": self.agreement_id,
            "withdrawn_at": _iso(self.at),
            "reason": self.reason,
            "principles": self.principles,
        }


@dataclass
class Answer:
    """`who-received` for one person: shares, withdrawals and denials by recipient."""

    subject_key: str
    receipts: list[Receipt]
    retractions: list[Retraction]
    denied: Counter

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject_key": self.subject_key,
            "received": [r.as_dict() for r in self.receipts],
            "retracted": [r.as_dict() for r in self.retractions],
            "withheld": [
                {"recipient": org or None, "decisions": n} for org, n in sorted(self.denied.items())
            ],
        }


def _latest_allowed(db: sqlite3.Connection, subject_key: str) -> dict[str, bool]:
    """Recipient -> whether its latest decision about the person is a share."""
    rows = db.execute(
        "SELECT recipient, allow, MAX(decided_at) FROM decisions WHERE subject_key = ? "
        "AND (allow = 1 OR " + WITHDRAWN + ") GROUP BY recipient",
        (subject_key,),
    ).fetchall()
    return {recipient: bool(allow) for recipient, allow, _ in rows}


def answer(db: sqlite3.Connection, subject_key: str) -> Answer:
    """What each organisation received about one person, which shares were withdrawn
    (when, why), and the denials by recipient (withdrawals apart)."""
    receipts, denied = who_received(db, subject_key)
    holding = _latest_allowed(db, subject_key)
    for receipt in receipts:
        receipt.holds_now = holding.get(receipt.recipient, False)
    rows = db.execute(
        "SELECT recipient, agreement_id, decided_at, reasons, principles FROM decisions "
        "WHERE subject_key = ? AND allow = 0 AND " + WITHDRAWN + " ORDER BY decided_at",
        (subject_key,),
    ).fetchall()
    retractions = [Retraction(r[0], r[1], _dt(r[2]), split(r[3])[0], split(r[4])) for r in rows]
    return Answer(subject_key, receipts, retractions, denied)


def who_received(db: sqlite3.Connection, subject_key: str) -> tuple[list[Receipt], Counter]:
    """What each organisation received about one person, and the denials by recipient
    (withdrawals of earlier shares are not denials: see `answer`)."""
    rows = db.execute(
        "SELECT recipient, agreement_id, agreement_version, fields_released, "
        "MIN(decided_at), MAX(decided_at), COUNT(*) FROM decisions "
        "WHERE subject_key = ? AND allow = 1 "
        "GROUP BY recipient, agreement_id, agreement_version, fields_released "
        "ORDER BY MIN(decided_at)",
        (subject_key,),
    ).fetchall()
    receipts = [Receipt(r[0], r[1], r[2], split(r[3]), _dt(r[4]), _dt(r[5]), r[6]) for r in rows]
    denied = Counter(
        dict(
            db.execute(
                "SELECT recipient, COUNT(*) FROM decisions WHERE subject_key = ? AND allow = 0 "
                "AND NOT " + WITHDRAWN + " GROUP BY recipient",
                (subject_key,),
            ).fetchall()
        )
    )
    return receipts, denied


def receipt_lines(
    subject_key: str,
    receipts: list[Receipt],
    denied: Counter,
    retractions: list[Retraction] = (),
) -> list[str]:
    """`who-received` as lines of text: the pseudonymous key, never an identifier."""
    lines = [f"person {subject_key[:16]}… (pseudonymous key)"]
    if not receipts:
        lines.append("  no organisation received data about this person")
    for r in receipts:
        # No agreement: the requester's own requests returned to it (its own data).
        under = f"{r.agreement_id} v{r.agreement_version}" if r.agreement_id else "own data"
        lines.append(
            f"  {r.recipient:<28} {under}  "
            f"{r.first_at:%Y-%m-%d %H:%M:%S}Z .. {r.last_at:%Y-%m-%d %H:%M:%S}Z  "
            f"{r.times}x  fields: {', '.join(r.fields)}"
            + ("" if r.holds_now else "  (withdrawn since)")
        )
    if retractions:
        lines.append("  withdrawn (earlier shares retracted):")
    for r in retractions:
        lines.append(
            f"    {r.recipient:<26} {r.agreement_id or '(no agreement named)'}  "
            f"{r.at:%Y-%m-%d %H:%M:%S}Z  {r.reason}"
        )
    if denied:
        lines.append(
            "  withheld from: "
            + ", ".join(f"{org or '(no agreement)'} {n}x" for org, n in sorted(denied.items()))
        )
    return lines


def holders(db: sqlite3.Connection) -> set[tuple[str, str]]:
    """(subject key, recipient) pairs whose latest share-or-withdrawal is a share: what
    each recipient holds now, as far as the index knows."""
    rows = db.execute(
        "SELECT subject_key, recipient, allow, MAX(decided_at) FROM decisions "
        "WHERE allow = 1 OR " + WITHDRAWN + " GROUP BY subject_key, recipient"
    )
    return {(subject, recipient) for subject, recipient, allow, _ in rows if allow}


def indexed_until(db: sqlite3.Connection) -> datetime | None:
    """The time of the newest decision in the index, or None when it is empty."""
    (latest,) = db.execute("SELECT MAX(decided_at) FROM decisions").fetchone()
    return None if latest is None else _dt(latest)


def agreement_ids(db: sqlite3.Connection) -> set[str]:
    """Every agreement id the index has decisions under."""
    return {row[0] for row in db.execute("SELECT DISTINCT agreement_id FROM decisions") if row[0]}


@dataclass
class AgreementReport:
    allowed: Counter = field(default_factory=Counter)  # recipient -> decisions
    denied: Counter = field(default_factory=Counter)  # recipient -> decisions
    fields: Counter = field(default_factory=Counter)  # (recipient, field) -> releases
    reasons: Counter = field(default_factory=Counter)  # deny reason -> decisions
    clauses: Counter = field(default_factory=Counter)  # clause cited by denies -> decisions
    principles: Counter = field(default_factory=Counter)  # principle cited by denies -> decisions
    withdrawn: Counter = field(default_factory=Counter)  # recipient -> withdrawals of shares
    people: int = 0
    people_withdrawn: int = 0

    def as_dict(self) -> dict[str, Any]:
        recipients = sorted(set(self.allowed) | set(self.denied) | set(self.withdrawn))
        return {
            "people_shared": self.people,
            "people_withdrawn": self.people_withdrawn,
            "recipients": [
                {
                    "recipient": r or None,
                    "allowed": self.allowed[r],
                    "denied": self.denied[r],
                    "withdrawn": self.withdrawn[r],
                    "fields": {n: c for (org, n), c in sorted(self.fields.items()) if org == r},
                }
                for r in recipients
            ],
            "deny_reasons": [{"reason": k, "decisions": v} for k, v in self.reasons.most_common()],
            "denials_by_clause": dict(sorted(self.clauses.items())),
            "denials_by_principle": dict(self.principles.most_common()),
        }


def agreement_report(db: sqlite3.Connection, agreement_id: str, since: datetime) -> AgreementReport:
    """Counts by recipient and field, and deny reasons, for one agreement since a time.

    Grouping by the stored JSON lists first keeps the work in SQLite; the few distinct
    lists are then split in Python.
    """
    since_ms = int(since.timestamp() * 1000)
    where = "WHERE agreement_id = ? AND decided_at >= ?"
    report = AgreementReport()
    for recipient, allow, withdrawn, count in db.execute(
        f"SELECT recipient, allow, allow = 0 AND {WITHDRAWN}, COUNT(*) FROM decisions {where} "
        "GROUP BY recipient, allow, 3",
        (agreement_id, since_ms),
    ):
        chosen = report.allowed if allow else report.withdrawn if withdrawn else report.denied
        chosen[recipient] += count
    for recipient, fields, count in db.execute(
        f"SELECT recipient, fields_released, COUNT(*) FROM decisions {where} AND allow = 1 "
        "GROUP BY recipient, fields_released",
        (agreement_id, since_ms),
    ):
        for name in split(fields):
            report.fields[(recipient, name)] += count
    for reasons, count in db.execute(
        f"SELECT reasons, COUNT(*) FROM decisions {where} AND allow = 0 AND NOT {WITHDRAWN} "
        "GROUP BY reasons",
        (agreement_id, since_ms),
    ):
        for reason in split(reasons):
            report.reasons[reason] += count
    for clauses, principles, count in db.execute(
        f"SELECT clauses, principles, COUNT(*) FROM decisions {where} AND allow = 0 "
        f"AND NOT {WITHDRAWN} GROUP BY clauses, principles",
        (agreement_id, since_ms),
    ):
        for clause in split(clauses):
            report.clauses[clause] += count
        for principle in split(principles):
            report.principles[principle] += count
    (report.people,) = db.execute(
        f"SELECT COUNT(DISTINCT subject_key) FROM decisions {where} AND allow = 1",
        (agreement_id, since_ms),
    ).fetchone()
    (report.people_withdrawn,) = db.execute(
        f"SELECT COUNT(DISTINCT subject_key) FROM decisions {where} AND allow = 0 AND {WITHDRAWN}",
        (agreement_id, since_ms),
    ).fetchone()
    return report


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _dt(millis: int) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(millis / 1000, UTC)
