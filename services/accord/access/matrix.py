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
from accord.core.errors import InfrastructureError
from accord.core.kafka import KafkaConnection, confluent_admin, connection, delete_topics
from accord.core.settings import Settings
from accord.core.topics import CASES, MATCH_DECISIONS, MATCH_REVIEW, Topics

OPERATIONS = (
    "produce",
    "consume",
    "describe",
    "create",
    "delete",
    "alter-configs",
    "delete-records",
)
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
class Route:
    """One HTTP call of the OPA or registry matrix, by whom, and what was promised."""

    surface: str  # "opa" or "registry"
    caller: str
    route: str
    expected: bool
    allowed: bool
    status: int

    @property
    def ok(self) -> bool:
        return self.expected == self.allowed


@dataclass
class Matrix:
    cells: list[Cell] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def as_promised(self) -> int:
        return sum(1 for c in self.cells if c.ok)

    def failures(self) -> list[Cell]:
        return [c for c in self.cells if not c.ok]

    def route_failures(self) -> list[Route]:
        return [r for r in self.routes if not r.ok]


def families(topics: Topics, worker_group: str, schemas_topic: str) -> list[Family]:
    return [
        Family("partner.<board>", topics.partner(BOARD, "shielding-list")),
        Family("partner.<council>", topics.partner(COUNCIL, "support-request")),
        Family("share.<council>", topics.share(COUNCIL)),
        Family("share.<other council>", topics.share(OTHER_COUNCIL)),
        Family("rejects.<board>", topics.rejects(BOARD)),
        Family("rejects.<council>", topics.rejects(COUNCIL)),
        Family("hub.*", topics.internal(CASES)),
        Family("hub.match.review", topics.internal(MATCH_REVIEW)),
        Family("hub.match.decisions", topics.internal(MATCH_DECISIONS)),
        Family("audit", topics.audit),
        Family("changelogs", Topics.changelog(worker_group, CASES)),
        Family("_schemas", schemas_topic),
    ]


def expected(grants: list[acls.Grant], principal: str, topic: str, operation: str) -> bool:
    """What the model promises: the administrator may do anything; nobody else creates,
    deletes, alters a topic's configuration (its retention) or deletes records from it;
    produce needs WRITE, consume READ and describe DESCRIBE on the topic."""
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


def probe_produce(client: Client, topics: list[str]) -> dict[str, tuple[bool, str]]:
    """One record to partition 0 of each topic; each topic's delivery report."""
    from confluent_kafka import Producer

    outcome: dict[str, tuple[bool, str]] = {}

    def delivered(error: Any, message: Any) -> None:
        outcome[message.topic()] = (True, "delivered") if error is None else (False, error.name())

    producer = Producer({**client.config, "message.timeout.ms": 8000, "acks": "all"})
    for topic in topics:
        producer.produce(
            topic, key=b"matrix-probe", value=b"probe", partition=0, on_delivery=delivered
        )
    client.wait(lambda: producer.flush(0.2) == 0 and len(outcome) == len(topics), 10)
    refused = client.refused() or "no delivery report"
    return {t: outcome.get(t, (False, refused)) for t in topics}


def probe_consume(
    client: Client, topics: list[str], group_prefix: str
) -> dict[str, tuple[bool, str]]:
    """Partition 0 of each topic from the beginning: a record read, or the error."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            **client.config,
            "group.id": f"{group_prefix}matrix-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    result: dict[str, tuple[bool, str]] = {}

    def step() -> bool:
        message = consumer.poll(0.2)
        if message is not None and message.topic() not in result:
            error = message.error()
            if error is None:
                result[message.topic()] = (True, "read a record")
            elif error.name() != "_PARTITION_EOF":
                result[message.topic()] = (False, error.name())
        return len(result) == len(topics)

    try:
        consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in topics])
        client.wait(step, 10)
    finally:
        consumer.close()
    refused = client.refused() or "nothing read"
    return {t: result.get(t, (False, refused)) for t in topics}


def probe_describe(client: Client, admin: Any, topics: list[str]) -> dict[str, tuple[bool, str]]:
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(timeout=8).topics
    except KafkaException as exc:
        return dict.fromkeys(topics, (False, _error_code(exc)))
    result = {}
    for topic in topics:
        found = metadata.get(topic)
        if found is None:
            result[topic] = (False, "not visible")
        elif found.error is not None:
            result[topic] = (False, found.error.name())
        else:
            result[topic] = (True, f"{len(found.partitions)} partitions")
    return result


def _settle(futures: dict[str, Any], done: str) -> dict[str, tuple[bool, str]]:
    from confluent_kafka import KafkaException

    result = {}
    for topic, future in futures.items():
        try:
            future.result()
            result[topic] = (True, done)
        except KafkaException as exc:
            result[topic] = (False, _error_code(exc))
    return result


def probe_create(
    admin: Any, topics: list[str], timeout_s: float = 8.0
) -> dict[str, tuple[bool, str]]:
    from confluent_kafka.admin import NewTopic

    futures = admin.create_topics(
        [NewTopic(t, 1, 1) for t in topics], operation_timeout=timeout_s, request_timeout=timeout_s
    )
    return _settle(futures, "created")


def probe_delete(
    admin: Any, topics: list[str], timeout_s: float = 8.0
) -> dict[str, tuple[bool, str]]:
    futures = admin.delete_topics(topics, operation_timeout=timeout_s, request_timeout=timeout_s)
    return _settle(futures, "deleted")


def probe_alter_configs(
    admin: Any, topics: list[str], timeout_s: float = 8.0
) -> dict[str, tuple[bool, str]]:
    """Set each topic's retention.ms to -1 (IncrementalAlterConfigs): what shortening an
    audit's retention, or lengthening a list's, would need."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    result = {}
    for topic in topics:
        resource = ConfigResource(
            ResourceType.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        try:
            futures = admin.incremental_alter_configs([resource], request_timeout=timeout_s)
            for future in futures.values():
                future.result()
            result[topic] = (True, "altered")
        except KafkaException as exc:
            result[topic] = (False, _error_code(exc))
    return result


def probe_delete_records(
    admin: Any, topics: list[str], timeout_s: float = 8.0
) -> dict[str, tuple[bool, str]]:
    """DeleteRecords before offset 0 of partition 0: authorised like a real deletion (the
    topic's DELETE), and removes nothing the other probes read."""
    from confluent_kafka import KafkaException, TopicPartition

    futures = admin.delete_records(
        [TopicPartition(t, 0, 0) for t in topics], request_timeout=timeout_s
    )
    result = {}
    for tp, future in futures.items():
        try:
            future.result()
            result[tp.topic] = (True, "deleted before offset 0")
        except KafkaException as exc:
            code = _error_code(exc)
            # Authorised, then refused by the topic's own policy: a compacted topic takes no
            # DeleteRecords from anyone (the broker checks the ACL first).
            result[tp.topic] = (True, code) if code == "POLICY_VIOLATION" else (False, code)
    return result


# --- the HTTP surfaces ----------------------------------------------------------------------


def _session(verify: str | bool, auth: tuple[str, str] | None = None) -> Any:
    import requests

    session = requests.Session()
    session.trust_env = False  # a REQUESTS_CA_BUNDLE must not replace the stack's CA
    session.verify = verify
    session.auth = auth
    return session


def opa_routes(settings: Settings) -> list[Route]:
    """The hub's token, a wrong token and no token x the OPA API: only the hub's token may
    query, and nobody may write policies or data; /health is open."""
    from accord.core.policy import opa_token

    callers = {
        "hub token": {"Authorization": f"Bearer {opa_token(settings)}"},
        "wrong token": {"Authorization": "Bearer not-the-hub-token"},
        "no token": {},
    }
    base = settings.opa_url
    calls = [
        ("POST /v1/data/accord/sharing", "post", "/v1/data/accord/sharing", {"input": {}}),
        ("GET /v1/data/agreements", "get", "/v1/data/agreements", None),
        ("PUT /v1/policies/x", "put", "/v1/policies/matrix-probe", "package x\n"),
        ("DELETE /v1/policies/x", "delete", "/v1/policies/matrix-probe", None),
        ("PUT /v1/data/agreements", "put", "/v1/data/agreements", {}),
        ("PATCH /v1/data", "patch", "/v1/data", []),
        ("GET /health", "get", "/health", None),
    ]
    routes = []
    session = _session(False)
    for caller, headers in callers.items():
        for label, method, path, body in calls:
            kwargs: dict[str, Any] = {"headers": headers, "timeout": 5}
            if isinstance(body, str):
                kwargs["data"] = body
            elif body is not None:
                kwargs["json"] = body
            status = session.request(method, base + path, **kwargs).status_code
            promised = path == "/health" or (caller == "hub token" and method in ("post", "get"))
            routes.append(Route("opa", caller, label, promised, status < 300, status))
    return routes


def registry_routes(settings: Settings, topics: Topics) -> list[Route]:
    """Principals x registry calls: an organisation only on its own subjects, config
    changes and deletes only by the administrator, nobody without credentials."""
    ca = str(settings.trusted_ca)
    own = Topics.subject(topics.partner(BOARD, "shielding-list"))
    other = Topics.subject(topics.partner(COUNCIL, "support-request"))
    schema = {"schema": (settings.schemas_dir / "ShieldingListEntry.avsc").read_text()}
    other_schema = {"schema": (settings.schemas_dir / "SupportRequest.avsc").read_text()}
    callers: dict[str, Any] = {}
    for name in (principals.ADMIN, principals.WORKER, BOARD, COUNCIL):
        credential = read_credential_file(principals.credential_file(settings, name))
        callers[name] = _session(ca, (name, credential.secret.get_secret_value()))
    callers[IMPOSTOR] = _session(ca, (COUNCIL, "not-the-secret"))
    callers[NOBODY] = _session(ca)
    base = settings.schema_registry_url
    calls = [
        ("register partner.<board>", "post", f"/subjects/{own}/versions", schema),
        ("register partner.<council>", "post", f"/subjects/{other}/versions", other_schema),
        ("read partner.<board>", "get", f"/subjects/{own}/versions/latest", None),
        ("PUT /config", "put", "/config", {"compatibility": "BACKWARD_TRANSITIVE"}),
        ("PUT /config/<subject>", "put", f"/config/{own}", {"compatibility": "BACKWARD"}),
    ]
    promised = {
        principals.ADMIN: {c[0] for c in calls},
        principals.WORKER: {"read partner.<board>"},
        BOARD: {"register partner.<board>", "read partner.<board>"},
        COUNCIL: {"register partner.<council>"},
    }
    # The administrator first, so each subject exists when the others try it.
    routes = []
    for caller, session in callers.items():
        for label, method, path, body in calls:
            status = session.request(method, base + path, json=body, timeout=10).status_code
            allowed = status < 300
            routes.append(
                Route("registry", caller, label, label in promised.get(caller, ()), allowed, status)
            )
    return routes


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
    # A deployment of its own, down to the registry's store, so nothing real is touched.
    scoped = settings.model_copy(
        update={
            "topic_prefix": f"matrix{run_id}.",
            "worker_id": f"matrix{run_id}-worker",
            "schemas_topic": f"matrix{run_id}._schemas",
        }
    )
    provision.apply(scoped)
    topics = Topics(scoped)
    fams = families(topics, scoped.worker_group, scoped.schemas_topic)
    grants = provision.deployment_grants(scoped, provision.active_organisations(scoped))
    matrix = Matrix()
    seed = connection(scoped, principals.ADMIN)
    seeder = confluent_admin(seed)
    names = [fam.topic for fam in fams]
    doomed = [f"{name}.matrix-doomed" for name in names]
    fresh = [f"{name}.matrix-new" for name in names]
    # A record to read in each, and a topic to try deleting beside each.
    seeded = probe_produce(Client(seed, scoped), names)
    if not all(ok for ok, _ in seeded.values()):
        raise InfrastructureError(f"the access matrix could not seed its topics: {seeded}")
    probe_create(seeder, doomed)
    try:
        # The administrator last: it alone may delete the doomed topics.
        for name, conn in sorted(subjects(scoped), key=lambda s: s[0] == principals.ADMIN):
            say(f"matrix: {name}")
            client = Client(conn, scoped)
            from confluent_kafka.admin import AdminClient

            admin = AdminClient(client.config)
            principal = conn.principal if conn is not None and name != IMPOSTOR else name
            if principal in (BOARD, COUNCIL, principals.CONSOLE):
                group_prefix = f"{topics.prefix}{principal}."
            elif principal == principals.WORKER:
                group_prefix = scoped.worker_group
            else:
                group_prefix = principal
            quick = 3.0 if conn is None or name == IMPOSTOR else 8.0
            found = {
                "produce": probe_produce(client, names),
                "consume": probe_consume(client, names, group_prefix),
                "describe": probe_describe(client, admin, names),
                "create": dict(zip(names, probe_create(admin, fresh, quick).values(), strict=True)),
                "delete": dict(
                    zip(names, probe_delete(admin, doomed, quick).values(), strict=True)
                ),
                "alter-configs": probe_alter_configs(admin, names, quick),
                "delete-records": probe_delete_records(admin, names, quick),
            }
            for fam in fams:
                for operation in OPERATIONS:
                    allowed, detail = found[operation][fam.topic]
                    promised = expected(grants, principal, fam.topic, operation)
                    matrix.cells.append(Cell(name, fam.label, operation, promised, allowed, detail))
        matrix.routes = opa_routes(scoped) + registry_routes(scoped, topics)
    finally:
        for prefix in (scoped.topic_prefix, scoped.worker_group):
            delete_topics(seed, prefix)
        provision.remove_deployment(scoped)
    matrix.seconds = time.monotonic() - started
    return matrix
