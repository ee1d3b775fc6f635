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
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from accord.core.errors import InfrastructureError, SchemaError
from accord.core.kafka import connection
from accord.core.logging import get_logger
from accord.core.serde import AvroSerde, encode_body, parse_schema_text, registry_client
from accord.core.serde import load_schema_text as _load_schema_text
from accord.core.settings import Settings
from accord.core.topics import DATASET_RECORDS, Topics, is_org_id
from accord.governance.authority import no_authority_message, publishable
from accord.ingest.mapping import load_mapping, mapping_path
from accord.ingest.pipeline import (
    SCHEMA_VERSION,
    Accepted,
    Location,
    Pipeline,
    Rejected,
    event_id_for,
)
from accord.ingest.readers import (
    PublishInputError,
    ReadLimits,
    SourceRow,
    format_of,
    open_table,
    read_csv_rows,
)
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
    published: int = 0
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason code -> "row 12"
    fields: dict[str, str] = field(default_factory=dict)  # reason code -> first field named
    topic: str = ""
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def rows(self) -> int:
        return self.published + self.quarantined

    def note_rejection(self, rejected: Rejected) -> None:
        self.reasons[rejected.code] += 1
        self.examples.setdefault(rejected.code, rejected.location.label)
        if rejected.field:
            self.fields.setdefault(rejected.code, rejected.field)


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


def _check_inputs(org: str, dataset: str) -> None:
    if not is_org_id(org):
        raise PublishInputError(f"--as {org!r} is not an organisation id (e.g. nhs-lothian)")
    if dataset not in DATASET_RECORDS:
        raise PublishInputError(
            f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASET_RECORDS))}"
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
) -> PublishReport:
    """Validate every row of `path` and publish it, or quarantine it with its reasons.

    The column mapping is `mapping`, else `partners/<org>.yaml` under the project home
    when it exists. With `dry_run` nothing is sent anywhere; the report says what would be.
    A dataset the organisation has no authority to publish (as OPA answers; when it cannot,
    the worker decides) is a PublishInputError before anything is read.
    Raises PublishInputError for what the caller must fix, InfrastructureError when Kafka
    or the registry failed (then the report's counts are not trustworthy).
    """
    _check_inputs(org, dataset)
    if not path.is_file():
        raise PublishInputError(f"no such file: {path}")
    # Early and advisory: the worker decides every record whatever is answered here.
    allowed = publishable(settings, org)
    if allowed is not None and dataset not in allowed:
        raise PublishInputError(no_authority_message(org, dataset, allowed))
    file_format = format_of(path, fmt)
    pipeline = Pipeline(org, dataset, clock)
    mapping_file = mapping if mapping is not None else mapping_path(settings.home / "partners", org)
    columns = load_mapping(mapping_file, dataset, pipeline.dataset.fields, required=bool(mapping))
    table = open_table(path, file_format, ReadLimits.of(settings))
    if table.header is not None:
        targets = columns.check_header(table.header)
        missing = [name for name in pipeline.dataset.required_fields if name not in targets]
        if table.header and missing:
            raise PublishInputError(
                f"{path.name} has no column for: {', '.join(missing)}; add the column, or map "
                f"the partner's column name to it in {mapping_file}"
            )

    report = PublishReport(topic=Topics(settings).partner(org, dataset), dry_run=dry_run)
    publisher = None if dry_run else Publisher(signed_in_as(settings, org))
    encode_locally = _local_encoder(settings, dataset) if dry_run else None
    deliveries = Deliveries()

    def handle(outcome: Accepted | Rejected) -> None:
        if isinstance(outcome, Rejected):
            report.note_rejection(outcome)
        if publisher is not None:
            publisher.send(org, dataset, outcome, deliveries)
        elif isinstance(outcome, Accepted):
            assert encode_locally is not None
            encode_locally(outcome.event)
            report.published += 1
        else:
            report.quarantined += 1

    try:
        if publisher is not None:
            publisher.prepare(org, dataset)
        for row in table.rows:
            where = f"{path.name} line {row.line_number}"
            location = Location("FILE", where, f"row {row.line_number}", row.line_number)
            if row.problem is not None:
                handle(pipeline.reject(location, row.original, [row.problem]))
            else:
                values, twice = columns.apply(row.values)
                if twice is not None:
                    problem = FieldError(
                        twice, "duplicate_field", f"The record gives {twice} more than once."
                    )
                    handle(pipeline.reject(location, row.original, [problem]))
                else:
                    outcome = pipeline.process(values, location, row.original)
                    try:
                        handle(outcome)
                    except SchemaError as exc:  # nothing was sent; the message quotes nothing
                        if not isinstance(outcome, Accepted):
                            raise
                        problem = FieldError("", "encode_failed", str(exc))
                        handle(pipeline.reject(location, row.original, [problem]))
            if progress:
                progress(1)
        if publisher is not None:
            publisher.wait(deliveries)
    finally:
        if publisher is not None:
            report.published, report.quarantined = deliveries.events, deliveries.quarantined
            publisher.close()
    report.ignored_columns = sorted(columns.ignored)
    log.info(
        "file_published",
        topic=report.topic,
        dataset=dataset,
        published=report.published,
        quarantined=report.quarantined,
        dry_run=dry_run,
    )
    return report
