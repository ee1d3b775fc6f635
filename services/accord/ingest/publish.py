"""`accord publish`: a partner's file into its partner topic, rejected rows into quarantine.

Every row is either published (acknowledged by the broker: acks=all, idempotent producer)
or quarantined with its original bytes, line number and every reason found. Event ids are
derived from the partner, dataset and row content, so publishing the same file twice
yields the same ids and the same keys. The rules are the pipeline's
(`accord.ingest.pipeline`), shared with the HTTP gateway and the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from accord.core.errors import InfrastructureError, SchemaError
from accord.core.kafka import connection
from accord.core.logging import get_logger
from accord.core.orgs import UnknownOrganisation, require_known
from accord.core.serde import AvroSerde, encode_body, parse_schema_text, registry_client
from accord.core.serde import load_schema_text as _load_schema_text
from accord.core.settings import Settings
from accord.core.topics import DATASET_RECORDS, Topics, is_org_id
from accord.governance.authority import no_authority_message, publishable
from accord.ingest.datasets import DATASETS
from accord.ingest.habits import load_habits
from accord.ingest.mapping import load_mapping, mapping_path
from accord.ingest.pipeline import (
    SCHEMA_VERSION,
    Accepted,
    Location,
    Pipeline,
    Rejected,
    event_id_for,
    problems_of,
)
from accord.ingest.readers import (
    HEADER_SEARCH_ROWS,
    PublishInputError,
    ReadLimits,
    SourceRow,
    Table,
    format_of,
    open_table,
    read_csv_rows,
)
from accord.ingest.rejects import RejectsFile
from accord.ingest.validation import Clock, FieldError

__all__ = [
    "PublishInputError",
    "Deliveries",
    "PublishReport",
    "Publisher",
    "SCHEMA_VERSION",
    "SourceRow",
    "event_id_for",
    "publish_file",
    "read_csv_rows",
]

log = get_logger("accord.publish")

# How long to wait for the broker to acknowledge what was sent. Generous, so that a
# broker restart in the middle of a large file is ridden out rather than reported.
ACK_TIMEOUT_S = 300.0


@dataclass
class PublishReport:
    """What a file's publication did. Every problem of every rejected row is counted
    (`problems`, by field and rule; `reasons`, by rule), not only each row's first."""

    published: int = 0
    quarantined: int = 0  # rows rejected (sent to the organisation's rejects topic)
    reasons: Counter[str] = field(default_factory=Counter)  # rule -> problems found
    examples: dict[str, str] = field(default_factory=dict)  # rule -> first row, "row 12"
    problems: Counter[tuple[str, str]] = field(default_factory=Counter)  # (field, rule)
    messages: dict[tuple[str, str], str] = field(default_factory=dict)  # (field, rule) -> text
    first_row: dict[tuple[str, str], str] = field(default_factory=dict)  # (field, rule) -> row
    tidied: Counter[tuple[str, str]] = field(default_factory=Counter)  # (field, what)
    topic: str = ""
    rejects_topic: str = ""
    rejects_file: Path | None = None
    read_as: str = ""  # how the file was read: encoding, delimiter, header, sheet
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False
    sharing: SharingCheck | None = None

    @property
    def rows(self) -> int:
        return self.published + self.quarantined

    @property
    def problem_count(self) -> int:
        return sum(self.problems.values())

    def note_rejection(self, rejected: Rejected) -> None:
        for error in rejected.errors:
            key = (error.field or "", error.rule)
            self.problems[key] += 1
            self.messages.setdefault(key, error.message)
            self.first_row.setdefault(key, rejected.location.label)
            self.reasons[error.rule] += 1
            self.examples.setdefault(error.rule, rejected.location.label)

    def note_tidied(self, outcome: Accepted | Rejected) -> None:
        for change in outcome.tidied:
            self.tidied[(change.field, change.what)] += 1


# Which policy package decides records of each dataset, as the worker's gate asks it
# (accord.pipeline.decision): a board's list under the agreements, a request returned to
# its requester as its own data. Outcomes and consent changes are not shared themselves.
DECIDING_PACKAGE: dict[str, str] = {
    "shielding-list": "accord.sharing",
    "support-request": "accord.own_data",
}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass
class SharingCheck:
    """A dry run's question to OPA: which of the accepted rows would any agreement share,
    and why not the others. The same policy and input the worker's gate uses (the row's
    fields as the case's source carries them, before any derived attribute); asked now,
    in batches, at most once more after OPA failed to answer."""

    settings: Settings
    org: str
    dataset: str
    batch: int = 500
    shared: int = 0
    not_shared: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # why not, -> rows
    first_row: dict[str, str] = field(default_factory=dict)
    note: str | None = None  # why the check was not made, or not made for every row
    _pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.dataset not in DECIDING_PACKAGE:
            self.note = (
                f"{self.dataset} records are not shared themselves: they update the cases "
                "of the people they are about"
            )

    @property
    def package(self) -> str | None:
        return DECIDING_PACKAGE.get(self.dataset)

    def add(self, label: str, event: dict[str, Any]) -> None:
        if self.package is None or self.note is not None:
            return
        self._pending.append((label, event))
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending or self.package is None or self.note is not None:
            return
        import requests

        from accord.core.credentials import CredentialError
        from accord.core.policy import opa_session

        records = [
            {
                "record_id": str(index),
                "subject_key": event["event_id"],
                "fields": {name: _json_value(value) for name, value in event.items()},
                "subject": {},
            }
            for index, (_, event) in enumerate(pending)
        ]
        policy_input = {
            "source_org": self.org,
            "dataset": self.dataset,
            "purpose": self.settings.purpose,
            "records": records,
        }
        url = f"{self.settings.opa_url}/v1/data/{self.package.replace('.', '/')}/decisions"
        try:
            session = opa_session(self.settings)
            response = session.post(url, json={"input": policy_input}, timeout=10)
            response.raise_for_status()
            decisions = response.json().get("result")
            if not isinstance(decisions, list):
                raise ValueError("no decisions")
        except (requests.RequestException, ValueError, CredentialError, AttributeError) as exc:
            self.note = (
                f"sharing not checked: OPA at {self.settings.opa_url} did not answer "
                f"({type(exc).__name__}); the worker decides every record when it is published"
            )
            return
        by_record: dict[str, list[dict[str, Any]]] = {}
        for decision in decisions:
            if isinstance(decision, dict):
                by_record.setdefault(str(decision.get("record_id")), []).append(decision)
        for index, (label, _) in enumerate(pending):
            found = by_record.get(str(index), [])
            if any(d.get("allow") is True for d in found):
                self.shared += 1
                continue
            self.not_shared += 1
            why = {
                str(d["reasons"][0]) if d.get("reasons") else "denied (no reason given)"
                for d in found
            } or {"no decision: the policy answered nothing for this record"}
            for reason in sorted(why):
                self.reasons[reason] += 1
                self.first_row.setdefault(reason, label)


class Deliveries:
    """Broker acknowledgements of one batch of sends (a file, or one HTTP request).

    librdkafka calls `callback` from whichever thread serves the producer's queue; the
    counts only ever rise when the broker acknowledged a record (acks=all).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.events = 0
        self.quarantined = 0
        self.errors: list[str] = []

    def callback(self, accepted: bool) -> Callable[[Any, Any], None]:
        def delivered(error: Any, message: Any) -> None:
            with self._lock:
                if error is not None:
                    self.errors.append(str(error))
                elif accepted:
                    self.events += 1
                else:
                    self.quarantined += 1

        return delivered

    @property
    def settled(self) -> int:
        with self._lock:
            return self.events + self.quarantined + len(self.errors)


class Publisher:
    """Sends accepted events to partner topics and rejections to quarantine.

    Uses librdkafka (confluent-kafka) with acks=all and an idempotent producer: a record
    counts only once the broker acknowledged it, and the producer's retries never write
    a record twice. librdkafka rather than the hub's kafka-python helpers because a board's
    list of 100,000 rows must go out in seconds, not minutes. Thread-safe, so the gateway
    shares one across requests.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        prepare_timeout_s: float = 15.0,
        **producer_config: Any,
    ) -> None:
        """Signs in to Kafka and the registry as the settings' principal: the
        organisation for `accord publish --as <org>`, the gateway's own for the gateway."""
        self.settings = settings
        self.principal = connection(settings).principal
        self.prepare_timeout_s = prepare_timeout_s
        self.topics = Topics(settings)
        self.serde = AvroSerde(registry_client(settings, self.principal), settings.schemas_dir)
        config = {
            **connection(settings).confluent(),
            "client.id": "accord-publish",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
            # Ride out a broker restart in the middle of a file (five minutes).
            "delivery.timeout.ms": int(ACK_TIMEOUT_S * 1000),
            **producer_config,
        }
        # librdkafka's own log lines go through Python logging, not straight to stderr.
        kafka_log = logging.getLogger("accord.librdkafka")
        try:
            self.producer = Producer(config, logger=kafka_log)
            self.admin = AdminClient(connection(settings).confluent(), logger=kafka_log)
        except KafkaException as exc:
            raise InfrastructureError(f"cannot create a Kafka producer: {exc}") from exc
        self._ready: set[str] = set()
        self._ready_lock = threading.Lock()

    def prepare(self, org: str, dataset: str) -> str:
        """Check that the partner topic and the organisation's rejects exist and may be
        written; return the partner topic. Only the administrator creates topics (`accord
        partner add` makes an organisation's), and a principal sees only the topics it may
        use, so a topic missing here is either not made or not this publisher's.

        Uses librdkafka's admin client so that a missing broker is reported within
        `prepare_timeout_s` (the gateway answers 503 in seconds, not half a minute).
        """
        topic = self.topics.partner(org, dataset)
        with self._ready_lock:
            if topic in self._ready:
                return topic
            wanted = [topic, self.topics.rejects(org)]
            try:
                existing = self.admin.list_topics(timeout=self.prepare_timeout_s).topics
            except KafkaException as exc:
                raise InfrastructureError(
                    f"Kafka at {self.settings.bootstrap_servers} unreachable: {exc}"
                ) from exc
            missing = [name for name in wanted if name not in existing]
            if missing:
                raise PublishInputError(
                    f"{missing[0]} does not exist or {self.principal} may not write to it: "
                    f"is {org} registered (`accord partner add {org}`)?"
                )
            self._ready.add(topic)
        return topic

    def send(
        self, org: str, dataset: str, outcome: Accepted | Rejected, deliveries: Deliveries
    ) -> None:
        """Queue one outcome: an event to its partner topic, a rejection to the
        organisation's rejects."""
        if isinstance(outcome, Accepted):
            topic = self.topics.partner(org, dataset)
            value = self.serde.encode(
                Topics.subject(topic), DATASET_RECORDS[dataset], outcome.event
            )
            key = outcome.key
        else:
            topic = self.topics.rejects(org)
            record = outcome.quarantine
            value = self.serde.encode(Topics.subject(topic), "QuarantinedRecord", record)
            key = outcome.quarantine["quarantine_id"].encode()
        callback = deliveries.callback(isinstance(outcome, Accepted))
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=callback)
                break
            except BufferError:
                self.producer.poll(0.2)  # the local queue is full: let deliveries drain
        deliveries.sent += 1
        self.producer.poll(0)

    def wait(self, deliveries: Deliveries, timeout_s: float = ACK_TIMEOUT_S) -> None:
        """Wait until the broker settled every send; raise if any was not acknowledged."""
        deadline = time.monotonic() + timeout_s
        while deliveries.settled < deliveries.sent and time.monotonic() < deadline:
            self.producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        if deliveries.errors or deliveries.settled < deliveries.sent:
            first = deliveries.errors[0] if deliveries.errors else "timed out"
            raise InfrastructureError(
                f"Kafka did not acknowledge every record ({deliveries.events} published and "
                f"{deliveries.quarantined} quarantined were; "
                f"{deliveries.sent - deliveries.events - deliveries.quarantined} not): {first}"
            )

    def close(self) -> None:
        self.producer.flush(10)


def signed_in_as(settings: Settings, org: str) -> Settings:
    """Settings that publish as `org` with a credential this process holds.

    The organisation is who signs in, never a flag: `--as` only picks which of the held
    credentials to use. A process given one credential (ACCORD_SECRET, ACCORD_SECRET_FILE
    or ACCORD_CREDENTIALS_FILE) holds only that one; otherwise it holds the files in the
    credentials directory."""
    if settings.secret or settings.secret_file or settings.credentials_file:
        held = connection(settings).principal
        if held != org:
            raise PublishInputError(
                f"the credential held is {held}'s, not {org}'s: publish as {held}, or sign "
                f"in as {org}"
            )
        return settings
    return settings.model_copy(update={"principal": org})


def _check_inputs(settings: Settings, org: str, dataset: str) -> None:
    if dataset not in DATASET_RECORDS:
        raise PublishInputError(
            f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASET_RECORDS))}"
        )
    try:
        require_known(settings, org, flag="--as")
    except UnknownOrganisation as exc:
        raise PublishInputError(str(exc)) from None
    assert is_org_id(org)


def _missing_columns_message(
    path: Path, table: Table, missing: list[str], targets: dict[str, str], mapping_file: Path
) -> str:
    """Which sheet, row and header were looked at, and what to do; a row that names no
    field is not quoted (it may be a person's data, not a header)."""
    where = table.where(path.name)
    unit = "row" if table.sheet is not None else "line"
    if not targets:
        looked = f"no row among the first {HEADER_SEARCH_ROWS} of {where} names any of its fields"
    else:
        found = ", ".join(f"{column} -> {name}" for name, column in targets.items())
        others = [c for c in table.header or [] if c and c not in targets.values()]
        looked = f"the header on {unit} {table.header_line} of {where} gives {found}"
        if others:
            looked += f"; its other columns are ignored: {', '.join(others)}"
    return (
        f"{path.name} has no column for: {', '.join(missing)} ({looked}). Add the columns, "
        f"map your column names to them in {mapping_file}, or give --header-row N "
        + ("or --sheet NAME " if table.sheet is not None else "")
        + "if the header is elsewhere"
    )


def _local_encoder(settings: Settings, dataset: str) -> Callable[[dict[str, Any]], bytes]:
    """Encode with the local .avsc, no registry: a dry run proves rows fit the schema."""
    parsed = parse_schema_text(_load_schema_text(settings.schemas_dir, DATASET_RECORDS[dataset]))
    return lambda record: encode_body(parsed, record, DATASET_RECORDS[dataset])


def publish_file(
    settings: Settings,
    org: str,
    dataset: str,
    path: Path,
    progress: Callable[[int], None] | None = None,
    *,
    fmt: str | None = None,
    mapping: Path | None = None,
    dry_run: bool = False,
    clock: Clock | None = None,
    encoding: str | None = None,
    header_row: int | None = None,
    sheet: str | None = None,
    rejects: Path | None = None,
    check_sharing: bool = True,
) -> PublishReport:
    """Validate every row of `path` and publish it, or reject it with all its problems.

    The column mapping is `mapping`, else `partners/<org>.yaml` under the project home
    when it exists; values are read through the shared synonyms (`config/aliases.yaml`)
    and the mapping's own. A CSV's encoding is `encoding` or detected, its delimiter
    sniffed; the header is row `header_row` or found among the first rows; a workbook's
    sheet is `sheet` or the one whose header names most fields. Rejected rows go to the
    organisation's rejects topic, and with `rejects` also to that file (.csv or .jsonl).
    With `dry_run` nothing is sent anywhere; the report says what would be, and (with
    `check_sharing`) which accepted rows no agreement would share now, as OPA answers.
    An organisation no agreement or registration names, or a dataset it has no authority
    to publish (as OPA answers; when it cannot, the worker decides), is a
    PublishInputError before anything is read. Raises PublishInputError for what the
    caller must fix, InfrastructureError when Kafka or the registry failed (then the
    report's counts are not trustworthy).
    """
    _check_inputs(settings, org, dataset)
    if not path.is_file():
        raise PublishInputError(f"no such file: {path}")
    if rejects is not None and rejects.resolve() == path.resolve():
        raise PublishInputError(f"--rejects {rejects} is the input file itself")
    # Early and advisory: the worker decides every record whatever is answered here.
    allowed = publishable(settings, org)
    if allowed is not None and dataset not in allowed:
        raise PublishInputError(no_authority_message(org, dataset, allowed))
    file_format = format_of(path, fmt)
    rules = DATASETS[dataset].rules
    mapping_file = mapping if mapping is not None else mapping_path(settings.home / "partners", org)
    columns = load_mapping(
        mapping_file, dataset, DATASETS[dataset].fields, required=bool(mapping), rules=rules
    )
    habits = load_habits(settings.home, rules).merged(columns.habits)
    pipeline = Pipeline(org, dataset, clock, habits)
    table = open_table(
        path,
        file_format,
        ReadLimits.of(settings),
        encoding=encoding,
        header_row=header_row,
        header_score=columns.header_score,
        sheet=sheet,
    )
    if table.header is not None:
        targets = columns.check_header(table.header)
        missing = [name for name in pipeline.dataset.required_fields if name not in targets]
        if table.header and missing:
            raise PublishInputError(
                _missing_columns_message(path, table, missing, targets, mapping_file)
            )

    topics = Topics(settings)
    report = PublishReport(
        topic=topics.partner(org, dataset),
        rejects_topic=topics.rejects(org),
        dry_run=dry_run,
        read_as=table.describe(),
    )
    if dry_run and check_sharing:
        report.sharing = SharingCheck(settings, org, dataset)
    publisher = None if dry_run else Publisher(signed_in_as(settings, org))
    encode_locally = _local_encoder(settings, dataset) if dry_run else None
    deliveries = Deliveries()
    rejects_file = RejectsFile(rejects, table.header) if rejects is not None else None

    def handle(outcome: Accepted | Rejected, row: SourceRow) -> None:
        if isinstance(outcome, Rejected):
            report.note_rejection(outcome)
            if rejects_file is not None:
                rejects_file.write(
                    outcome.location.label,
                    outcome.location.where,
                    problems_of(outcome.errors),
                    row.values,
                    row.original,
                )
        if publisher is not None:
            publisher.send(org, dataset, outcome, deliveries)
        elif isinstance(outcome, Accepted):
            assert encode_locally is not None
            encode_locally(outcome.event)
            report.published += 1
            if report.sharing is not None:
                report.sharing.add(outcome.location.label, outcome.event)
        else:
            report.quarantined += 1

    where_file = table.where(path.name)
    try:
        if publisher is not None:
            publisher.prepare(org, dataset)
        for row in table.rows:
            unit = "row" if table.sheet is not None else "line"
            where = f"{where_file} {unit} {row.line_number}"
            location = Location("FILE", where, f"row {row.line_number}", row.line_number)
            if row.problem is not None:
                handle(pipeline.reject(location, row.original, [row.problem]), row)
            else:
                values, twice = columns.apply(row.values)
                if twice is not None:
                    problem = FieldError(
                        twice, "duplicate_field", f"The record gives {twice} more than once."
                    )
                    handle(pipeline.reject(location, row.original, [problem]), row)
                else:
                    outcome = pipeline.process(values, location, row.original)
                    report.note_tidied(outcome)
                    try:
                        handle(outcome, row)
                    except SchemaError as exc:  # nothing was sent; the message quotes nothing
                        if not isinstance(outcome, Accepted):
                            raise
                        problem = FieldError("", "encode_failed", str(exc))
                        handle(pipeline.reject(location, row.original, [problem]), row)
            if progress:
                progress(1)
        if publisher is not None:
            publisher.wait(deliveries)
        if report.sharing is not None:
            report.sharing.flush()
    finally:
        if publisher is not None:
            report.published, report.quarantined = deliveries.events, deliveries.quarantined
            publisher.close()
        if rejects_file is not None:
            rejects_file.close()
            report.rejects_file = rejects if rejects_file.rows else None
    report.ignored_columns = sorted(columns.ignored)
    log.info(
        "file_published",
        topic=report.topic,
        dataset=dataset,
        published=report.published,
        quarantined=report.quarantined,
        problems=report.problem_count,
        dry_run=dry_run,
    )
    return report
