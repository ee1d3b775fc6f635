"""`accord stack secrets`: what docker-compose.yml's containers need, made once on volumes.

The compose file's one-shot `setup` service runs this with the hub's secrets volume as its
state dir (ACCORD_STATE_DIR) and ACCORD_TLS_NAMES naming the compose services. It makes,
keeping whatever already exists (so running it on every `docker compose up` is harmless):

- on the hub's volume (the state dir): the CA and the server and controller certificates,
  with every compose service name as a subject alternative name (`accord.stack.tls`); a
  credential for each of the hub's principals and their registry users
  (`accord.registry.users`); the OPA token;
- in `kafka_dir` (Kafka's own volume, which only the broker mounts): `server.properties`
  for a broker on the compose network (`accord.stack.local.kafka_properties`, the same
  security settings as the local stack, with the administrator's inter-broker sign-in),
  copies of the CA and of the two PEM keystores, the cluster id, the `--add-scram`
  argument that formats the administrator's credential into the metadata, and
  `admin.properties`, the administrator's client configuration for Kafka's own tools
  (the health check);
- in `opa_dir` (OPA's volume): the token's SHA-256 only, loaded as `data.system.accord`.

Nothing here is a default: every secret is random, generated on the machine that runs the
containers, and never leaves its volumes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.core.credentials import ADMIN, ensure_credential, private_dir, write_private
from accord.core.errors import StackError
from accord.core.kafka import SASL_MECHANISM, SECURITY_PROTOCOL
from accord.core.settings import Settings
from accord.registry.users import provision_services
from accord.stack import opa
from accord.stack.local import (
    CONTROLLER_LISTENER,
    SCRAM_LOGIN,
    Listener,
    _kafka_cluster_id,
    kafka_properties,
    scram_format_argument,
)
from accord.stack.tls import TlsFiles, ensure_tls, missing_names

Report = Callable[[str], None]

# The broker's addresses on the compose network, and its data dir (the image's volume).
KAFKA_HOST = "kafka"
KAFKA_PORT = 9092  # SASL_SSL for the containers: kafka:9092
KAFKA_HOST_PORT = 19092  # SASL_SSL for the host: published on 127.0.0.1 only
KAFKA_CONTROLLER_PORT = 9093  # mutual TLS, the broker's own certificate only
KAFKA_DATA_DIR = Path("/var/lib/kafka/data")
HOST_LISTENER = "HOST"


@dataclass(frozen=True)
class KafkaFiles:
    dir: Path
    tls: TlsFiles
    properties: Path
    cluster_id: Path
    admin_scram: Path
    admin_client: Path


def kafka_files(kafka_dir: Path) -> KafkaFiles:
    return KafkaFiles(
        dir=kafka_dir,
        tls=TlsFiles(
            ca=kafka_dir / "ca.pem",
            server_cert=kafka_dir / "server.pem",  # not copied: the keystore holds it
            server_key=kafka_dir / "server-key.pem",  # likewise
            server_pem=kafka_dir / "server-keystore.pem",
            controller_pem=kafka_dir / "controller-keystore.pem",
        ),
        properties=kafka_dir / "server.properties",
        cluster_id=kafka_dir / "cluster-id",
        admin_scram=kafka_dir / "admin-scram",
        admin_client=kafka_dir / "admin.properties",
    )


def compose_listeners(settings: Settings) -> list[Listener]:
    return [
        Listener("SASL_SSL", f"0.0.0.0:{KAFKA_PORT}", f"{KAFKA_HOST}:{KAFKA_PORT}"),
        # Advertised as the host sees it: the port compose publishes on 127.0.0.1.
        Listener(HOST_LISTENER, f"0.0.0.0:{KAFKA_HOST_PORT}", f"127.0.0.1:{settings.kafka_port}"),
        # Bound to the service's own address, so its voter endpoint is a name it can prove.
        Listener(CONTROLLER_LISTENER, f"{KAFKA_HOST}:{KAFKA_CONTROLLER_PORT}"),
    ]


def admin_client_properties(settings: Settings, files: KafkaFiles) -> str:
    admin = ensure_credential(settings, ADMIN)
    password = admin.secret.get_secret_value()
    return "\n".join(
        [
            "# The administrator's client configuration for Kafka's tools (--command-config).",
            f"security.protocol={SECURITY_PROTOCOL}",
            f"sasl.mechanism={SASL_MECHANISM}",
            f'sasl.jaas.config={SCRAM_LOGIN} required username="{admin.principal}" '
            f'password="{password}";',
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={files.tls.ca}",
            "",
        ]
    )


def _write_public(path: Path, text: str) -> Path:
    """A file every user may read (OPA's image runs as its own user): for what is no
    secret, such as a token's SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


# The `cluster` profile: three combined broker-controller nodes, kafka (node 1), kafka-2
# and kafka-3, with static controller voters; each node's HOST listener is published on
# 127.0.0.1 at ACCORD_KAFKA_PORT + 10 * (node - 1).
CLUSTER_NODES = 3
NODE_PORT_STEP = 10


def node_host(node: int) -> str:
    return KAFKA_HOST if node == 1 else f"{KAFKA_HOST}-{node}"


def node_properties_file(kafka_dir: Path, node: int) -> Path:
    return kafka_dir / ("server.properties" if node == 1 else f"server-{node}.properties")


def with_overrides(properties: str, overrides: dict[str, str], drop: set[str]) -> str:
    """A server.properties text with keys replaced or added, and `drop`ped keys removed."""
    lines, seen = [], set()
    for line in properties.splitlines():
        key = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        if key in drop:
            continue
        if key in overrides:
            line = f"{key}={overrides[key]}"
            seen.add(key)
        lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items() if k not in seen]
    return "\n".join(lines) + "\n"


def cluster_node_properties(
    settings: Settings, admin: Any, files: KafkaFiles, node: int, nodes: int = CLUSTER_NODES
) -> str:
    """server.properties of node `node` of the compose cluster: the single node's security
    settings, its own id and names, static voters, and replication 3 with min ISR 2."""
    host = node_host(node)
    host_port = KAFKA_HOST_PORT + NODE_PORT_STEP * (node - 1)
    listeners = [
        Listener("SASL_SSL", f"0.0.0.0:{KAFKA_PORT}", f"{host}:{KAFKA_PORT}"),
        Listener(
            HOST_LISTENER,
            f"0.0.0.0:{host_port}",
            f"127.0.0.1:{settings.kafka_port + NODE_PORT_STEP * (node - 1)}",
        ),
        Listener(CONTROLLER_LISTENER, f"{host}:{KAFKA_CONTROLLER_PORT}"),
    ]
    base = kafka_properties(
        settings,
        admin,
        files.tls,
        listeners=listeners,
        controller=f"{host}:{KAFKA_CONTROLLER_PORT}",
        data_dir=KAFKA_DATA_DIR,
        written_by=f"`accord stack secrets --brokers {nodes}` (docker-compose.yml's setup)",
    )
    replicas, min_isr = str(min(3, nodes)), str(min(2, nodes))
    voters = ",".join(f"{n}@{node_host(n)}:{KAFKA_CONTROLLER_PORT}" for n in range(1, nodes + 1))
    return with_overrides(
        base,
        {
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
        },
        drop={"controller.quorum.bootstrap.servers"},
    )


def make_secrets(
    settings: Settings,
    kafka_dir: Path,
    opa_dir: Path,
    report: Report | None = None,
    brokers: int = 1,
) -> KafkaFiles:
    """Every secret, certificate and configuration file the compose services need; with
    `brokers` 3, the `cluster` profile's three nodes' configurations."""
    if brokers not in (1, CLUSTER_NODES):
        raise StackError(f"docker-compose.yml runs 1 or {CLUSTER_NODES} brokers, not {brokers}")
    say = report or (lambda _line: None)
    missing = missing_names(settings)
    if missing:
        raise StackError(
            f"the certificates in {settings.tls_dir} were made without {', '.join(missing)}; "
            "remove the secrets volume (`docker compose down -v`) to make them afresh"
        )
    private_dir(settings.state_dir)
    tls = ensure_tls(settings)
    say(f"tls: CA and certificates in {settings.tls_dir}")
    # The hub's principals: a credential each, and the same pair as a registry user.
    provision_services(settings)
    admin = ensure_credential(settings, ADMIN)
    say(f"credentials: the hub's principals in {settings.state_dir / 'credentials'}")

    opa.ensure_token(settings)
    _write_public(opa_dir / "authz-data.json", opa.token_data(settings))
    say(f"opa: token in {settings.opa_token_path}, its SHA-256 in {opa_dir}")

    files = kafka_files(kafka_dir)
    private_dir(kafka_dir)
    for source, target in (
        (tls.ca, files.tls.ca),
        (tls.server_pem, files.tls.server_pem),
        (tls.controller_pem, files.tls.controller_pem),
    ):
        write_private(target, source.read_text())
    if not files.cluster_id.exists():
        write_private(files.cluster_id, _kafka_cluster_id() + "\n")
    if brokers == 1:
        write_private(
            files.properties,
            kafka_properties(
                settings,
                admin,
                files.tls,
                listeners=compose_listeners(settings),
                controller=f"{KAFKA_HOST}:{KAFKA_CONTROLLER_PORT}",
                data_dir=KAFKA_DATA_DIR,
                written_by="`accord stack secrets` (docker-compose.yml's setup)",
            ),
        )
    else:
        for node in range(1, brokers + 1):
            write_private(
                node_properties_file(kafka_dir, node),
                cluster_node_properties(settings, admin, files, node, brokers),
            )
    # How storage is formatted: --standalone for one node, static voters for three.
    write_private(kafka_dir / "nodes", f"{brokers}\n")
    write_private(files.admin_scram, scram_format_argument(admin) + "\n")
    write_private(files.admin_client, admin_client_properties(settings, files))
    say(f"kafka: server.properties, keystores and the administrator's sign-in in {kafka_dir}")
    return files
