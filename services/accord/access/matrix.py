"""The access matrix: every principal x topic family x operation, tried for real.

`run(settings)` provisions a throw-away deployment (its own topic prefix and worker
group, with the same ACL derivation as every other), puts one record in each family's
topic, then, signed in as each principal with its real credential, tries to produce,
consume, describe, create and delete there. Each cell's expectation comes from the model
in `accord.access.acls` (the organisation's own lists and partner topics, the worker's
stage topics, the audit for the audit principal, the administrator everywhere) — not from
the broker — so a cell the broker allows but the model does not is a failure. Principals
without credentials and with a wrong secret are in the matrix too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from accord.access import acls, provision
from accord.core import credentials as principals
from accord.core.credentials import Credential, read_credential_file
from accord.core.kafka import KafkaConnection, confluent_admin, connection, delete_topics
from accord.core.settings import Settings
from accord.core.topics import Topics

OPERATIONS = ("produce", "consume", "describe", "create", "delete")
BOARD, COUNCIL, OTHER_COUNCIL = "nhs-lothian", "city-of-edinburgh", "east-lothian"
NOBODY, IMPOSTOR = "(no credentials)", "(wrong secret)"


@dataclass(frozen=True)
class Family:
    """A kind of topic, named as it looks to a given principal (own/other)."""

    label: str
    topic: str


@dataclass
class Cell:
    principal: str
    family: str
    operation: str
    expected: bool
    allowed: bool
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == self.allowed


@dataclass
class Matrix:
    cells: list[Cell] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def as_promised(self) -> int:
        return sum(1 for c in self.cells if c.ok)

    def failures(self) -> list[Cell]:
        return [c for c in self.cells if not c.ok]


def families(topics: Topics, worker_group: str, schemas_topic: str) -> list[Family]:
    return [
        Family("partner.<board>", topics.partner(BOARD, "shielding-list")),
        Family("partner.<council>", topics.partner(COUNCIL, "support-request")),
        Family("share.<council>", topics.share(COUNCIL)),
        Family("share.<other council>", topics.share(OTHER_COUNCIL)),
        Family("rejects.<board>", topics.rejects(BOARD)),
        Family("rejects.<council>", topics.rejects(COUNCIL)),
        Family("hub.*", topics.internal("cases")),
        Family("audit", topics.audit),
        Family("changelogs", f"{worker_group}-cases-changelog"),
        Family("_schemas", schemas_topic),
    ]


def expected(grants: list[acls.Grant], principal: str, topic: str, operation: str) -> bool:
    """What the model promises: the administrator may do anything; nobody else creates or
    deletes; produce needs WRITE, consume READ and describe DESCRIBE on the topic."""
    if principal == principals.ADMIN:
        return True
    needed = {"produce": acls.WRITE, "consume": acls.READ, "describe": acls.DESCRIBE}.get(operation)
    if needed is None:
        return False
    return any(
        g.principal == principal
        and g.resource_type == acls.TOPIC
        and g.operation == needed
        and (topic == g.name if g.pattern == acls.LITERAL else topic.startswith(g.name))
        for g in grants
    )


# --- probes ------------------------------------------------------------------------------


def _error_code(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else None
    name = getattr(error, "name", None)
    return name() if callable(name) else type(exc).__name__


FATAL = {"_AUTHENTICATION", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_SSL", "SASL_AUTHENTICATION_FAILED"}


class Client:
    """One principal's librdkafka configuration, with the connection errors it has met
    (an unauthenticated client fails every request the same way: no need to time out)."""

    def __init__(self, conn: KafkaConnection | None, settings: Settings) -> None:
        if conn is None:  # TLS but no SASL: the broker's only listener wants SCRAM
            base: dict[str, Any] = {
                "bootstrap.servers": settings.bootstrap_servers,
                "security.protocol": "SSL",
                "ssl.ca.location": str(settings.trusted_ca),
            }
        else:
            base = conn.confluent()
        self.errors: list[str] = []
        self.config = {**base, "error_cb": lambda e: self.errors.append(e.name())}

    def refused(self) -> str | None:
        return next((e for e in self.errors if e in FATAL), None)

    def wait(self, step: Callable[[], bool], timeout_s: float = 8.0) -> bool:
        """Run `step` until it returns True, the connection is refused, or time is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if step() or self.refused():
                return True
        return False


def probe_produce(client: Client, topic: str) -> tuple[bool, str]:
    from confluent_kafka import Producer

    outcome: list[Any] = []
    producer = Producer({**client.config, "message.timeout.ms": 8000, "acks": "all"})
    producer.produce(
        topic, key=b"matrix-probe", value=b"probe", on_delivery=lambda e, _m: outcome.append(e)
    )
    client.wait(lambda: producer.flush(0.2) == 0 and bool(outcome))
    if client.refused() and not outcome:
        return False, client.refused() or ""
    error = outcome[0] if outcome else "no delivery report"
    if error is None:
        return True, "delivered"
    return False, error.name() if hasattr(error, "name") else str(error)


def probe_consume(client: Client, topic: str, group_prefix: str) -> tuple[bool, str]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            **client.config,
            "group.id": f"{group_prefix}matrix-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    result: list[tuple[bool, str]] = []

    def step() -> bool:
        message = consumer.poll(0.2)
        if message is None:
            return False
        if message.error() is None:
            result.append((True, "read a record"))
        elif message.error().name() != "_PARTITION_EOF":
            result.append((False, message.error().name()))
        return bool(result)

    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        client.wait(step)
    finally:
        consumer.close()
    if result:
        return result[0]
    return False, client.refused() or "nothing read"


def probe_describe(client: Client, admin: Any, topic: str) -> tuple[bool, str]:
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(topic=topic, timeout=2 if client.refused() else 8)
    except KafkaException as exc:
        return False, _error_code(exc)
    found = metadata.topics.get(topic)
    if found is None:
        return False, "absent"
    if found.error is not None:
        return False, found.error.name()
    return True, f"{len(found.partitions)} partitions"


def probe_create(admin: Any, topic: str, timeout_s: float = 8.0) -> tuple[bool, str]:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    try:
        future = admin.create_topics(
            [NewTopic(topic, 1, 1)], operation_timeout=timeout_s, request_timeout=timeout_s
        )[topic]
        future.result()
        return True, "created"
    except KafkaException as exc:
        return False, _error_code(exc)


def probe_delete(admin: Any, topic: str, timeout_s: float = 8.0) -> tuple[bool, str]:
    from confluent_kafka import KafkaException

    try:
        future = admin.delete_topics(
            [topic], operation_timeout=timeout_s, request_timeout=timeout_s
        )[topic]
        future.result()
        return True, "deleted"
    except KafkaException as exc:
        return False, _error_code(exc)


# --- the run -------------------------------------------------------------------------------


def subjects(settings: Settings) -> list[tuple[str, KafkaConnection | None]]:
    """Everyone the matrix signs in as: each hub principal, a board, a council, somebody
    with a council's name and a wrong secret, and somebody with no credentials."""
    named = [*principals.SERVICE_PRINCIPALS, BOARD, COUNCIL]
    people: list[tuple[str, KafkaConnection | None]] = [
        (name, connection(settings, name)) for name in named
    ]
    real = read_credential_file(principals.credential_file(settings, COUNCIL))
    wrong = Credential(real.principal, SecretStr("not-" + real.secret.get_secret_value()))
    people.append(
        (IMPOSTOR, KafkaConnection(settings.bootstrap_servers, wrong, settings.trusted_ca))
    )
    people.append((NOBODY, None))
    return people


def run(settings: Settings, report: Callable[[str], None] | None = None) -> Matrix:
    say = report or (lambda _line: None)
    started = time.monotonic()
    run_id = uuid.uuid4().hex[:8]
    scoped = settings.model_copy(
        update={"topic_prefix": f"matrix{run_id}.", "worker_id": f"matrix{run_id}-worker"}
    )
    provision.apply(scoped)
    topics = Topics(scoped)
    fams = families(topics, scoped.worker_id, scoped.schemas_topic)
    grants = provision.deployment_grants(scoped, provision.active_organisations(scoped))
    matrix = Matrix()
    seed = connection(scoped, principals.ADMIN)
    seeder = confluent_admin(seed)
    doomed = [f"{fam.topic}.matrix-doomed" for fam in fams]
    try:
        seed_client = Client(seed, scoped)
        for fam in fams:
            if fam.topic != scoped.schemas_topic:  # never write into the registry's store
                probe_produce(seed_client, fam.topic)
        for name, conn in subjects(scoped):
            say(f"matrix: {name}")
            client = Client(conn, scoped)
            from confluent_kafka.admin import AdminClient

            admin = AdminClient(client.config)
            principal = conn.principal if conn is not None and name != IMPOSTOR else name
            group_prefix = (
                f"{topics.prefix}{principal}." if principal in (BOARD, COUNCIL) else principal
            )
            for fam in fams:
                for operation in OPERATIONS:
                    promised = expected(grants, principal, fam.topic, operation)
                    if (
                        fam.topic == scoped.schemas_topic
                        and principal == principals.ADMIN
                        and (operation in ("produce", "delete"))
                    ):
                        # The administrator may; the matrix leaves the real store alone.
                        matrix.cells.append(Cell(name, fam.label, operation, True, True, "skipped"))
                        continue
                    quick = 2.0 if client.refused() else 8.0
                    if operation == "produce":
                        allowed, detail = probe_produce(client, fam.topic)
                    elif operation == "consume":
                        allowed, detail = probe_consume(client, fam.topic, group_prefix)
                    elif operation == "describe":
                        allowed, detail = probe_describe(client, admin, fam.topic)
                    elif operation == "create":
                        allowed, detail = probe_create(admin, f"{fam.topic}.matrix-new", quick)
                        if allowed:
                            probe_delete(seeder, f"{fam.topic}.matrix-new")
                    else:
                        target = f"{fam.topic}.matrix-doomed"
                        probe_create(seeder, target)
                        allowed, detail = probe_delete(admin, target, quick)
                    matrix.cells.append(Cell(name, fam.label, operation, promised, allowed, detail))
    finally:
        for prefix in (scoped.topic_prefix, scoped.worker_id):
            delete_topics(seed, prefix)
        left = [t for t in doomed if not t.startswith((scoped.topic_prefix, scoped.worker_id))]
        seeder.delete_topics(left + [f"{scoped.schemas_topic}.matrix-new"], operation_timeout=8)
        provision.remove_deployment(scoped)
    matrix.seconds = time.monotonic() - started
    return matrix
