"""Kafka connections and the helpers shared by the CLI tools.

`connection(settings)` is the one place every Kafka client in the project gets its
connection settings from: SASL_SSL with SCRAM-SHA-512, the broker's certificate verified
against `settings.trusted_ca`, and the credential of the process's principal. Each client
library spells them its own way; `KafkaConnection` has one method per library
(kafka-python, confluent-kafka/librdkafka, aiokafka, faust), so no client is ever built
without them.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorError,
    TopicAlreadyExistsError,
)

from accord.core.credentials import Credential, CredentialError, held_credential
from accord.core.errors import InfrastructureError
from accord.core.settings import Settings

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
CLIENT_ID = "accord"
SECURITY_PROTOCOL = "SASL_SSL"
SASL_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class KafkaConnection:
    """Where Kafka is and who signs in to it."""

    bootstrap: str
    credential: Credential
    ca_file: Path

    @property
    def principal(self) -> str:
        return self.credential.principal

    def _password(self) -> str:
        return self.credential.secret.get_secret_value()

    def ssl_context(self) -> ssl.SSLContext:
        # Verifies the broker's certificate and host name; TLS 1.2 at least.
        if not self.ca_file.is_file():
            raise CredentialError(
                f"no CA bundle at {self.ca_file} to verify Kafka's certificate: `accord stack "
                "up` makes the local stack's, or set ACCORD_CA_FILE"
            )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def kafka_python(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": SECURITY_PROTOCOL,
            "sasl_mechanism": SASL_MECHANISM,
            "sasl_plain_username": self.principal,
            "sasl_plain_password": self._password(),
            "ssl_context": self.ssl_context(),
        }

    def confluent(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": SECURITY_PROTOCOL,
            "sasl.mechanism": SASL_MECHANISM,
            "sasl.username": self.principal,
            "sasl.password": self._password(),
            "ssl.ca.location": str(self.ca_file),
            "ssl.endpoint.identification.algorithm": "https",
        }

    def aiokafka(self) -> dict[str, Any]:
        # aiokafka took kafka-python's option names, and both take an SSLContext.
        return self.kafka_python()

    def faust(self) -> dict[str, Any]:
        """`broker` and `broker_credentials` for faust.App."""
        import faust  # the worker's dependency; the CLI tools need not import it

        return {
            "broker": ";".join(f"kafka://{s.strip()}" for s in self.bootstrap.split(",")),
            "broker_credentials": faust.SASLCredentials(
                username=self.principal,
                password=self._password(),
                ssl_context=self.ssl_context(),
                mechanism=SASL_MECHANISM,
            ),
        }


def connection(settings: Settings, principal: str | None = None) -> KafkaConnection:
    """The connection of this process: as `principal` when given (a tool acting for a
    named principal), else as the one the settings hold (ACCORD_PRINCIPAL, ACCORD_CREDENTIALS_FILE,
    or the principal a command set with `as_principal`)."""
    if principal is not None:
        settings = settings.model_copy(
            update={"principal": principal, "secret": None, "secret_file": None}
        )
    if not settings.principal and settings.credentials_file is None:
        raise CredentialError(
            "no Kafka principal chosen: set ACCORD_PRINCIPAL (with ACCORD_SECRET_FILE) or "
            "ACCORD_CREDENTIALS_FILE"
        )
    credential = held_credential(settings, settings.principal)
    return KafkaConnection(settings.bootstrap_servers, credential, settings.trusted_ca)


def as_principal(settings: Settings, principal: str) -> Settings:
    """Settings that sign in as `principal`, unless the environment already chose one."""
    if settings.principal or settings.credentials_file is not None:
        return settings
    return settings.model_copy(update={"principal": principal})


Connectable = Settings | KafkaConnection


def _conn(target: Connectable) -> KafkaConnection:
    return target if isinstance(target, KafkaConnection) else connection(target)


def admin_client(target: Connectable, timeout_ms: int = 15000) -> KafkaAdminClient:
    conn = _conn(target)
    try:
        return KafkaAdminClient(
            **conn.kafka_python(), client_id=CLIENT_ID, request_timeout_ms=timeout_ms
        )
    except KafkaError as exc:
        raise InfrastructureError(f"Kafka at {conn.bootstrap} unreachable: {exc}") from exc


def consumer(target: Connectable, **options: Any) -> KafkaConsumer:
    return KafkaConsumer(**_conn(target).kafka_python(), client_id=CLIENT_ID, **options)


def replication(brokers: int, wanted: int = 0) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of every topic the hub creates, on a
    cluster of `brokers`: min(3, brokers) replicas unless `wanted` (ACCORD_TOPIC_REPLICATION_FACTOR)
    says otherwise, and two in-sync replicas from three replicas on, so a record
    acknowledged to an acks=all producer is on two brokers and one broker may be lost."""
    replicas = wanted or min(3, max(1, brokers))
    return replicas, 2 if replicas >= 3 else 1


def replicated(configs: dict[str, str] | None, min_isr: int) -> dict[str, str]:
    """A topic's configs with its min.insync.replicas (unless they set one)."""
    out = dict(configs or {})
    if min_isr > 1:
        out.setdefault("min.insync.replicas", str(min_isr))
    return out


def topic_replication(settings: Settings, brokers: int) -> tuple[int, int]:
    """`replication` for these settings on a cluster of `brokers` brokers."""
    return replication(brokers, settings.topic_replication_factor)


def ensure_topics(
    target: Connectable, topics: dict[str, dict[str, str] | None], partitions: int
) -> None:
    """Create each topic (name -> configs) if missing; existing topics are left as they are.
    Replicated by the one rule (`replication`) over the brokers the cluster has."""
    admin = admin_client(target)
    try:
        existing = set(admin.list_topics())
        brokers = len(admin.describe_cluster().get("brokers", [])) or 1
        wanted = target.topic_replication_factor if isinstance(target, Settings) else 0
        replicas, min_isr = replication(brokers, wanted)
        missing = {
            name: {
                "num_partitions": partitions,
                "replication_factor": replicas,
                "configs": replicated(configs, min_isr),
            }
            for name, configs in topics.items()
            if name not in existing
        }
        if missing:
            try:
                admin.create_topics(missing, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                pass  # another process created it between the list and the create
    except KafkaError as exc:
        raise InfrastructureError(f"could not create topics {sorted(topics)}: {exc}") from exc
    finally:
        admin.close()


def delete_topics(target: Connectable, *prefixes: str) -> None:
    """Delete every topic whose name starts with one of `prefixes` (test clean-up)."""
    if not all(prefixes):
        raise ValueError("refusing to delete topics without a prefix")
    admin = admin_client(target)
    try:
        doomed = [t for t in admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            admin.delete_topics(doomed, raise_errors=False)
    finally:
        admin.close()


def acknowledged_producer(target: Connectable, **overrides: Any) -> KafkaProducer:
    """A producer whose sends count only once every in-sync replica has them."""
    conn = _conn(target)
    config: dict[str, Any] = {
        **conn.kafka_python(),
        "client_id": CLIENT_ID,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "compression_type": "gzip",
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaError as exc:
        raise InfrastructureError(f"Kafka at {conn.bootstrap} unreachable: {exc}") from exc


def read_topic(
    target: Connectable, topic: str, idle_timeout_s: float = 2.0, max_wait_s: float = 60.0
) -> Iterator[Any]:
    """Every committed record of `topic` from the beginning to its current end, then stop.

    Read-committed: the audit is written in transactions, and a record of an aborted one
    (a failed or fenced write, written again since) never happened."""
    yield from read_topics(target, [topic], idle_timeout_s, max_wait_s)


def read_topics(
    target: Connectable, topics: list[str], idle_timeout_s: float = 2.0, max_wait_s: float = 120.0
) -> Iterator[Any]:
    """Every committed record of each of `topics` from its beginning to its current end,
    with one consumer (one sign-in, one fetch session), then stop (read-committed: see
    `read_topic`)."""
    reader = consumer(
        target,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(idle_timeout_s * 1000),
        isolation_level="read_committed",
    )
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(reader.partitions_for_topic(topic) or set())
        ]
        if not tps:
            return
        reader.assign(tps)
        reader.seek_to_beginning(*tps)
        end = reader.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        deadline = time.monotonic() + max_wait_s
        while remaining and time.monotonic() < deadline:
            batch = reader.poll(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    yield record
                    if record.offset + 1 >= end[tp]:
                        remaining.discard(tp)
            for tp in list(remaining):
                if reader.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        reader.close()


def each_broker(
    target: Connectable, requests: Callable[[], Any], timeout_s: float = 15.0
) -> dict[int, Any]:
    """`requests()`'s request sent to every broker of the cluster, each answered by that
    broker itself: {node id: response}. A Metadata or DescribeAcls request is answered
    from the broker's own copy of the cluster metadata, which each broker applies from
    the KRaft metadata log on its own, some time after the controller committed it; the
    clients' ordinary calls ask whichever broker is least loaded, so they cannot tell
    whether every broker has applied a change. A broker that does not answer raises
    InfrastructureError (kafka-python's own per-broker calls, describe_log_dirs, send
    through the admin client's connection manager the same way)."""
    admin = admin_client(target, timeout_ms=int(timeout_s * 1000))
    try:
        manager = admin._manager
        nodes = sorted(b.node_id for b in manager.cluster.brokers())

        async def ask(node: int) -> Any:
            return await manager.send(requests(), node_id=node)

        answers = {}
        for node in nodes:
            try:
                answers[node] = manager.run(ask, node)
            except KafkaError as exc:
                raise InfrastructureError(f"broker {node} did not answer: {exc}") from exc
        return answers
    finally:
        admin.close()


def topics_not_ready(response: Any, topics: Iterable[str]) -> list[str]:
    """Of `topics`, those a broker's Metadata response does not show usable: missing, with
    an error (unknown, or not authorised for the asking principal), without partitions,
    or with a partition that has no leader."""
    shown = {t.name: t for t in response.topics}
    return sorted(
        name
        for name in topics
        if (topic := shown.get(name)) is None
        or topic.error_code != 0
        or not topic.partitions
        or any(p.error_code != 0 or p.leader_id < 0 for p in topic.partitions)
    )


def metadata_request(topics: Iterable[str]) -> Callable[[], Any]:
    from kafka.protocol.metadata import MetadataRequest

    names = sorted(topics)

    def request() -> Any:
        return MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name=n) for n in names],
            allow_auto_topic_creation=False,
        )

    return request


def _committed_offsets(
    admin: KafkaAdminClient, group_id: str, tps: list[TopicPartition], timeout_s: float = 30.0
) -> dict[TopicPartition, Any]:
    """The group's committed offsets; waits out a coordinator that is still starting (the
    broker creates __consumer_offsets on the first group lookup)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin.list_group_offsets({group_id: tps}).get(group_id, {})
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def partition_lags(
    target: Connectable, group_id: str, topics: list[str]
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> records not yet committed by consumer group `group_id`."""
    conn = _conn(target)
    reader = consumer(conn)
    admin = admin_client(conn)
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(reader.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return {}
        end = reader.end_offsets(tps)
        committed = _committed_offsets(admin, group_id, tps)
        lags = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lags[(tp.topic, tp.partition)] = max(0, end[tp] - done)
        return lags
    finally:
        reader.close()
        admin.close()


def group_lag(target: Connectable, group_id: str, topics: list[str]) -> int:
    """Records in `topics` not yet committed by consumer group `group_id`."""
    conn = _conn(target)
    reader = consumer(conn)
    admin = admin_client(conn)
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(reader.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return 0
        end = reader.end_offsets(tps)
        committed = _committed_offsets(admin, group_id, tps)
        lag = 0
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, end[tp] - done)
        return lag
    finally:
        reader.close()
        admin.close()


def confluent_admin(target: Connectable, **options: Any) -> Any:
    """librdkafka's admin client (ACLs, SCRAM credentials, configs), connected like the rest."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({**_conn(target).confluent(), "client.id": CLIENT_ID, **options})


def confluent_config(target: Connectable, **options: Any) -> dict[str, Any]:
    """Configuration of a librdkafka producer or consumer: the connection, then `options`."""
    return {**_conn(target).confluent(), "client.id": CLIENT_ID, **options}
