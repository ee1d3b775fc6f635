"""The local stack: Apache Kafka (KRaft), OPA, the schema registry and the console on
127.0.0.1.

Kafka runs from Maven Central jars resolved into the cache; OPA is built once with
`go install`; the console's assets come from npm (`npm ci`) on its first start. `up` is
idempotent: a component whose recorded process is alive and healthy
is left alone. Readiness is a real Kafka metadata request and real HTTP health calls.
`down` stops exactly the processes `up` started, by the pids it recorded.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from accord.core.credentials import (
    ADMIN,
    Credential,
    CredentialError,
    credential_file,
    ensure_credential,
    private_dir,
    write_private,
)
from accord.core.errors import InfrastructureError, MissingToolError, PortInUseError, StackError
from accord.core.kafka import connection, replication
from accord.core.settings import Settings
from accord.registry.users import provision_services
from accord.stack import opa
from accord.stack.tls import TlsFiles, ensure_tls

Report = Callable[[str], None]

OPA_MODULE = "github.com/open-policy-agent/opa"
# The broker's own certificate on the controller listener (see accord.stack.tls).
CONTROLLER_PRINCIPAL = "CN=accord-controller,O=Accord local stack"


@dataclass(frozen=True)
class Component:
    name: str
    port: int
    # A word that must appear in the process's command line, so a recycled pid is
    # never mistaken for ours.
    marker: str

    def pid_file(self, settings: Settings) -> Path:
        return settings.state_dir / "run" / f"{self.name}.pid"

    def log_file(self, settings: Settings) -> Path:
        return settings.state_dir / "logs" / f"{self.name}.log"


@dataclass(frozen=True)
class KafkaNode:
    """One Kafka node of the local stack (combined broker and controller). Node 1 keeps
    the single-node layout (<state>/kafka); node i > 1 lives in <state>/kafka-<i>."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def name(self) -> str:
        return "kafka" if self.node_id == 1 else f"kafka-{self.node_id}"

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def voter(self) -> str:
        return f"{self.node_id}@127.0.0.1:{self.controller_port}"


def nodes_file(settings: Settings) -> Path:
    """How many nodes the local stack's Kafka was formatted with (written by `up`)."""
    return settings.state_dir / "kafka" / "nodes"


def formatted_nodes(settings: Settings) -> int | None:
    try:
        return int(nodes_file(settings).read_text().strip())
    except (OSError, ValueError):
        # Formatted before the count was recorded: a single node.
        return 1 if (settings.state_dir / "kafka" / "data" / "meta.properties").exists() else None


def kafka_nodes(settings: Settings, count: int | None = None) -> list[KafkaNode]:
    """The local Kafka nodes: node i (from 1) on kafka_port + (i-1)*kafka_port_step."""
    count = count or settings.kafka_brokers
    step = settings.kafka_port_step
    return [
        KafkaNode(
            i + 1,
            settings.kafka_port + i * step,
            settings.kafka_controller_port + i * step,
            settings.state_dir / ("kafka" if i == 0 else f"kafka-{i + 1}"),
        )
        for i in range(count)
    ]


def component_names(settings: Settings) -> list[str]:
    """What `--only` may name: each Kafka node (kafka, kafka-2, ...), opa, registry."""
    count = max(settings.kafka_brokers, formatted_nodes(settings) or 1)
    return [n.name for n in kafka_nodes(settings, count)] + ["opa", "registry"]


def components(settings: Settings, brokers: int | None = None) -> list[Component]:
    """Every process of the stack: the Kafka nodes (their own server.properties in the
    command line is the marker: nodes of one stack differ only by it), OPA, the registry."""
    return [
        *(Component(n.name, n.port, str(n.config)) for n in kafka_nodes(settings, brokers)),
        Component("opa", settings.opa_port, "opa run --server"),
        Component("registry", settings.registry_port, "accord.registry"),
        Component("console", settings.console_port, "accord console"),
    ]


def node_of(settings: Settings, component: Component) -> KafkaNode | None:
    count = max(settings.kafka_brokers, formatted_nodes(settings) or 1)
    return next((n for n in kafka_nodes(settings, count) if n.name == component.name), None)


def is_kafka(component: Component) -> bool:
    return component.name == "kafka" or component.name.startswith("kafka-")


def address(settings: Settings, component: Component) -> str:
    if is_kafka(component):
        node = node_of(settings, component)
        return node.bootstrap if node else settings.bootstrap_servers
    if component.name == "opa":
        return settings.opa_url
    if component.name == "console":
        return console_url(settings)
    return settings.schema_registry_url


def console_url(settings: Settings) -> str:
    scheme = "https" if settings.console_tls else "http"
    return f"{scheme}://{settings.console_host}:{settings.console_port}"


# --- processes -------------------------------------------------------------------------


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(settings: Settings, component: Component) -> int | None:
    """The recorded pid if that process is alive and is still our component."""
    pid = _read_pid(component.pid_file(settings))
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return pid if component.marker in cmdline else None


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _spawn(
    settings: Settings, component: Component, argv: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log_path = component.log_file(settings)
    private_dir(log_path.parent)
    private_dir(component.pid_file(settings).parent)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `accord stack up`
            umask=0o077,  # data, logs and state readable by their owner only
            env={**os.environ, **(env or {})},
            cwd=settings.home,
        )
    component.pid_file(settings).write_text(str(process.pid))
    return process


def _stop(settings: Settings, component: Component, timeout_s: float = 20.0) -> bool:
    pid = running_pid(settings, component)
    component.pid_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return True


def _wait(
    check: Callable[[], bool],
    what: str,
    timeout_s: float,
    log: Path,
    process: subprocess.Popen[bytes],
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if process.poll() is not None:
            raise StackError(f"{what} exited during start-up; see {log}")
        time.sleep(0.5)
    raise StackError(f"{what} not ready after {timeout_s:.0f}s; see {log}")


# --- tools -------------------------------------------------------------------------------


def require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(f"`{name}` is not installed or not on PATH; it is needed {why}")
    return path


def ensure_kafka_jars(settings: Settings, report: Report) -> Path:
    libs = settings.kafka_dir / "libs"
    marker = settings.kafka_dir / ".complete"
    if marker.exists():
        return libs
    mvn = require_tool("mvn", "once, to fetch the Kafka jars from Maven Central")
    report(f"fetching Apache Kafka {settings.kafka_version} jars with Maven (first run only)")
    libs.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(settings.home / "deploy" / "kafka" / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
            f"-Dkafka.version={settings.kafka_version}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise StackError(
            f"Maven could not fetch Kafka {settings.kafka_version}: "
            + (result.stdout + result.stderr).strip()[-800:]
        )
    marker.write_text(settings.kafka_version)
    return libs


def ensure_opa(settings: Settings, report: Report) -> Path:
    binary = settings.opa_binary
    if binary.exists():
        return binary
    go = require_tool("go", "once, to build OPA with `go install`")
    report(f"building OPA {settings.opa_version} with go install (first run only, a few minutes)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "install", f"{OPA_MODULE}@{settings.opa_version}"],
        env={**os.environ, "CGO_ENABLED": "0", "GOBIN": str(binary.parent)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not binary.exists():
        raise StackError(f"go install of OPA failed: {(result.stdout + result.stderr)[-800:]}")
    return binary


# --- Kafka -----------------------------------------------------------------------------


def _admin(settings: Settings, bootstrap: str | None = None) -> KafkaAdminClient:
    options = connection(settings, ADMIN).kafka_python()
    if bootstrap:
        options["bootstrap_servers"] = bootstrap
    return KafkaAdminClient(**options, request_timeout_ms=3000, client_id="accord-stack")


def kafka_ready(settings: Settings, bootstrap: str | None = None) -> bool:
    """A real metadata request, signed in as the administrator (to one node when
    `bootstrap` names it)."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # refusals are expected while starting
    try:
        admin = _admin(settings, bootstrap)
    except (KafkaError, OSError, ValueError, CredentialError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
CONTROLLER_LISTENER = "CONTROLLER"


@dataclass(frozen=True)
class Listener:
    name: str  # CONTROLLER (mutual TLS) or a SASL_SSL listener's name
    bind: str  # host:port it listens on
    advertised: str | None = None  # host:port clients are told (None: not advertised)


def kafka_properties(
    settings: Settings,
    admin: Credential,
    tls: TlsFiles,
    *,
    listeners: list[Listener],
    controller: str,
    data_dir: Path,
    written_by: str,
    node_id: int = 1,
    voters: list[str] | None = None,
) -> str:
    """server.properties: SASL_SSL (SCRAM-SHA-512) on every client listener, the controller
    on mutual TLS that only the broker's own certificate passes, the StandardAuthorizer with
    no access where no ACL grants it, and the administrator the only super user. The first
    client listener carries the broker's own (inter-broker) sign-in as the administrator.
    The local stack and docker-compose.yml (`accord stack secrets`) both write it here.

    `voters` ("id@host:port" of every controller) makes node `node_id` one of a static
    quorum of that many; the internal topics are then replicated min(3, nodes) times and
    need two in-sync replicas from three nodes on (as the hub's own topics do,
    `accord.core.kafka.replication`)."""

    nodes = len(voters) if voters else 1
    replicas, min_isr = replication(nodes)
    quorum = (
        f"controller.quorum.voters={','.join(voters)}"
        if voters
        else f"controller.quorum.bootstrap.servers={controller}"
    )
    clients = [x for x in listeners if x.name != CONTROLLER_LISTENER]
    if not clients or len(clients) == len(listeners):
        raise ValueError("a broker needs a CONTROLLER listener and at least one client listener")
    password = admin.secret.get_secret_value()
    jaas = []
    for i, listener in enumerate(clients):
        # Only the inter-broker listener signs in itself; the others just take sign-ins.
        login = f' username="{admin.principal}" password="{password}"' if i == 0 else ""
        jaas.append(
            f"listener.name.{listener.name.lower()}.scram-sha-512.sasl.jaas.config="
            f"{SCRAM_LOGIN} required{login};"
        )
    protocols = [f"{CONTROLLER_LISTENER}:SSL"] + [f"{x.name}:SASL_SSL" for x in clients]
    return "\n".join(
        [
            f"# Written by {written_by}; edit deploy/ or ACCORD_* settings instead.",
            "# Holds the administrator's secret (inter-broker sign-in): kept 0600.",
            "process.roles=broker,controller",
            f"node.id={node_id}",
            quorum,
            "listeners=" + ",".join(f"{x.name}://{x.bind}" for x in listeners),
            "advertised.listeners="
            + ",".join(f"{x.name}://{x.advertised}" for x in clients if x.advertised),
            f"controller.listener.names={CONTROLLER_LISTENER}",
            f"inter.broker.listener.name={clients[0].name}",
            "listener.security.protocol.map=" + ",".join(protocols),
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            *jaas,
            # Clients re-authenticate hourly, so a deleted credential ends their session.
            "connections.max.reauth.ms=3600000",
            "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.server_pem}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.ca}",
            "listener.name.controller.ssl.keystore.type=PEM",
            f"listener.name.controller.ssl.keystore.location={tls.controller_pem}",
            "listener.name.controller.ssl.truststore.type=PEM",
            f"listener.name.controller.ssl.truststore.location={tls.ca}",
            "listener.name.controller.ssl.client.auth=required",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{admin.principal};User:{CONTROLLER_PRINCIPAL}",
            f"log.dirs={data_dir}",
            f"num.partitions={settings.topic_partitions}",
            "auto.create.topics.enable=false",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replicas}",
            "offsets.topic.num.partitions=6",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            # The audit's transactions (accord.worker.auditlog): a few partitions suffice.
            "transaction.state.log.num.partitions=6",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.backoff.ms=5000",
            # The cleaner's default 128 MB dedupe buffer is most of a small heap.
            "log.cleaner.dedupe.buffer.size=33554432",
            "",
        ]
    )


def scram_format_argument(admin: Credential) -> str:
    """`kafka-storage format --add-scram` of the first administrator: its credential goes
    in with the metadata; every other principal is created through the admin API."""
    return f"SCRAM-SHA-512=[name={admin.principal},password={admin.secret.get_secret_value()}]"


def _kafka_config(
    settings: Settings, admin: Credential, tls: TlsFiles, node: KafkaNode, nodes: list[KafkaNode]
) -> Path:
    """A local node's server.properties, on 127.0.0.1."""
    host = "127.0.0.1"
    write_private(
        node.config,
        kafka_properties(
            settings,
            admin,
            tls,
            listeners=[
                Listener("SASL_SSL", f"{host}:{node.port}", f"{host}:{node.port}"),
                Listener(CONTROLLER_LISTENER, f"{host}:{node.controller_port}"),
            ],
            controller=f"{host}:{node.controller_port}",
            data_dir=node.data_dir,
            written_by="`accord stack up`",
            node_id=node.node_id,
            # One node keeps the dynamic quorum it was always formatted with (--standalone).
            voters=[n.voter for n in nodes] if len(nodes) > 1 else None,
        ),
    )
    return node.config


def _java_argv(settings: Settings, libs: Path, main_class: str, *args: str) -> list[str]:
    java = require_tool("java", "to run the Kafka broker (Java 17 or newer)")
    log4j = settings.home / "deploy" / "kafka" / "log4j2.properties"
    return [
        java,
        *settings.kafka_heap.split(),
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def _kafka_cluster_id() -> str:
    # Kafka's Uuid text form: url-safe base64 of 16 random bytes, unpadded. Never one that
    # starts with "-" (1 in 64): kafka-storage's `-t -xyz` reads it as an option and
    # refuses to format (Kafka's own Uuid.randomUuid skips those for the same reason).
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def check_node_count(settings: Settings) -> None:
    """The stack's Kafka keeps the node count it was formatted with."""
    formatted = formatted_nodes(settings)
    if formatted is not None and formatted != settings.kafka_brokers:
        raise StackError(
            f"the local Kafka in {settings.state_dir} was formatted with {formatted} "
            f"node(s), not {settings.kafka_brokers}: run `accord stack up --brokers "
            f"{formatted}` (or set ACCORD_KAFKA_BROKERS={formatted}), or remove "
            f"{settings.state_dir} (`make clean`) to start afresh"
        )


def start_kafka(settings: Settings, report: Report, only: list[str] | None = None) -> list[str]:
    """Format (first run) and start every node that is not running; wait until each
    answers a metadata request. Returns the names of the nodes started."""
    libs = ensure_kafka_jars(settings, report)
    private_dir(settings.state_dir, tighten=True)
    check_node_count(settings)
    tls = ensure_tls(settings)
    nodes = kafka_nodes(settings)
    formatted = (nodes[0].data_dir / "meta.properties").exists()
    admin_file = credential_file(settings, ADMIN)
    if formatted and not admin_file.exists():
        raise StackError(
            f"the Kafka data in {nodes[0].data_dir} was made without authentication (or its "
            f"administrator's credentials {admin_file} are gone); remove {settings.state_dir} "
            "(`make clean`) to start afresh"
        )
    admin = ensure_credential(settings, ADMIN)
    cluster_id = _kafka_cluster_id()
    for node in nodes:
        if node.data_dir.exists():
            node.data_dir.chmod(0o700)  # data written before it was made private stays so
        _kafka_config(settings, admin, tls, node, nodes)
        if (node.data_dir / "meta.properties").exists():
            continue
        report(f"formatting Kafka storage of {node.name} (first run only)")
        quorum = ["--standalone"] if len(nodes) == 1 else []
        result = subprocess.run(
            _java_argv(
                settings,
                libs,
                "kafka.tools.StorageTool",
                "format",
                *quorum,
                "-t",
                cluster_id,
                "-c",
                str(node.config),
                # The first administrator's credential goes in with the metadata; every
                # other principal is created through the admin API (accord.access).
                "--add-scram",
                scram_format_argument(admin),
            ),
            capture_output=True,
            text=True,
            umask=0o077,
        )
        if result.returncode != 0:
            raise StackError(
                f"Kafka storage format of {node.name} failed: "
                f"{(result.stdout + result.stderr)[-800:]}"
            )
    write_private(nodes_file(settings), f"{len(nodes)}\n")
    started = []
    spawned: list[tuple[KafkaNode, Component, subprocess.Popen[bytes]]] = []
    for node, component in zip(nodes, components(settings), strict=False):
        if only and node.name not in only and "kafka" not in only:
            continue
        if running_pid(settings, component) is not None:
            continue
        for port, setting in ((node.port, "PORT"), (node.controller_port, "CONTROLLER_PORT")):
            if port_in_use(port):
                step = " (and ACCORD_KAFKA_PORT_STEP)" if node.node_id > 1 else ""
                raise PortInUseError(
                    f"port {port} for {node.name} is taken by another process; stop it or "
                    f"set ACCORD_KAFKA_{setting}{step}"
                )
        argv = _java_argv(settings, libs, "kafka.Kafka", str(node.config))
        spawned.append((node, component, _spawn(settings, component, argv)))
    # Every node is started before any is waited for: a quorum needs most of them up.
    for node, component, process in spawned:
        _wait(
            # The port check is cheap; the metadata request is the real readiness test.
            functools.partial(_node_ready, settings, node),
            f"Kafka {node.name} on {node.bootstrap}",
            settings.stack_timeout_s,
            component.log_file(settings),
            process,
        )
        started.append(node.name)
    return started


def _node_ready(settings: Settings, node: KafkaNode) -> bool:
    return port_in_use(node.port) and kafka_ready(settings, node.bootstrap)


# --- OPA and the registry ------------------------------------------------------------------


def http_ok(url: str, ca: Path | None = None) -> bool:
    try:
        return requests.get(url, timeout=2, verify=str(ca) if ca else True).status_code == 200
    except requests.RequestException:
        return False


def start_opa(settings: Settings, report: Report) -> None:
    ensure_opa(settings, report)
    component = _component(settings, "opa")
    try:
        argv = opa.server_argv(
            settings, f"127.0.0.1:{settings.opa_port}", settings.policies_dir, watch=True
        )
    except InfrastructureError as exc:
        raise StackError(str(exc)) from None
    process = _spawn(settings, component, argv)
    _wait(
        lambda: http_ok(f"{settings.opa_url}/health"),
        f"OPA on {settings.opa_url}",
        settings.stack_timeout_s,
        component.log_file(settings),
        process,
    )


def registry_ok(settings: Settings) -> bool:
    """`GET /` over TLS, verified against the stack's CA (the one route without sign-in)."""
    return http_ok(f"{settings.schema_registry_url}/", settings.trusted_ca)


def start_registry(settings: Settings, report: Report) -> None:
    component = _component(settings, "registry")
    ensure_tls(settings)
    # The hub's services sign in to the registry with their own credentials.
    provision_services(settings)
    argv = [sys.executable, "-m", "accord.registry", "--port", str(settings.registry_port)]
    process = _spawn(settings, component, argv, env={"ACCORD_LOG_FORMAT": "json"})
    _wait(
        lambda: registry_ok(settings),
        f"schema registry on {settings.schema_registry_url}",
        settings.stack_timeout_s,
        component.log_file(settings),
        process,
    )


def _component(settings: Settings, name: str) -> Component:
    return next(c for c in components(settings) if c.name == name)


# The console's npm packages (accord.console.app serves them); found by path, so the stack
# does not import the service it starts.
CONSOLE_ASSETS = Path(__file__).resolve().parents[1] / "console" / "assets"


def console_ok(settings: Settings) -> bool:
    """`GET /health` of the console (over TLS, verified against the stack's CA)."""
    return http_ok(
        f"{console_url(settings)}/health", settings.trusted_ca if settings.console_tls else None
    )


def ensure_console_assets(settings: Settings, report: Report) -> None:
    """GOV.UK and MOJ Frontend from npm, as package-lock.json pins them, compiled once
    (`make assets` does the same)."""
    css = CONSOLE_ASSETS / "dist" / "console.css"
    sources = [CONSOLE_ASSETS / "package-lock.json", *CONSOLE_ASSETS.glob("scss/*.scss")]
    if (
        css.is_file()
        and (CONSOLE_ASSETS / "node_modules" / "govuk-frontend").is_dir()
        and all(css.stat().st_mtime >= source.stat().st_mtime for source in sources)
    ):
        return
    npm = require_tool("npm", "to install the console's assets (Node.js 18 or newer)")
    report("console   installing its assets with npm ci (first run only)")
    for argv in (
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        [npm, "run", "--silent", "build"],
    ):
        done = subprocess.run(argv, cwd=CONSOLE_ASSETS, capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(
                f"`{' '.join(argv[1:3])}` failed in {CONSOLE_ASSETS}: "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )


def start_console(settings: Settings, report: Report) -> None:
    component = _component(settings, "console")
    ensure_tls(settings)
    ensure_console_assets(settings, report)
    argv = [sys.executable, "-m", "accord", "console"]
    process = _spawn(settings, component, argv, env={"ACCORD_LOG_FORMAT": "json"})
    _wait(
        lambda: console_ok(settings),
        f"console on {console_url(settings)}",
        settings.stack_timeout_s,
        component.log_file(settings),
        process,
    )


STARTERS = {"opa": start_opa, "registry": start_registry, "console": start_console}


def healthy(settings: Settings, component: Component) -> bool:
    if is_kafka(component):
        node = node_of(settings, component)
        return kafka_ready(settings, node.bootstrap if node else None)
    if component.name == "opa":
        return http_ok(f"{settings.opa_url}/health")
    if component.name == "console":
        return console_ok(settings)
    return registry_ok(settings)


# --- commands -------------------------------------------------------------------------------


def _wanted(component: Component, only: list[str] | None) -> bool:
    """`--only kafka` means every Kafka node; `--only kafka-2` that node alone."""
    if not only:
        return True
    return component.name in only or (is_kafka(component) and "kafka" in only)


def up(settings: Settings, report: Report, only: list[str] | None = None) -> None:
    require_tool("java", "to run the Kafka broker (Java 17 or newer)")
    check_node_count(settings)
    kafka_started = False
    kafka_wanted = False
    for component in components(settings):
        if not _wanted(component, only):
            continue
        where = address(settings, component)
        if running_pid(settings, component) is not None:
            if healthy(settings, component):
                report(f"{component.name:<9} already running  {where}")
                continue
            if not is_kafka(component):
                raise StackError(
                    f"{component.name} is running but not healthy; see "
                    f"{component.log_file(settings)} or run `accord stack down`"
                )
        if is_kafka(component):
            # The nodes start together (a quorum needs most of them), below.
            kafka_wanted = True
            continue
        if port_in_use(component.port):
            raise PortInUseError(
                f"port {component.port} for {component.name} is taken by another process; "
                f"stop it or set ACCORD_{component.name.upper()}_PORT"
            )
        if kafka_wanted and not kafka_started:
            _start_kafka_nodes(settings, report, only)
            provision(settings, report)
            kafka_started = True
        started = time.monotonic()
        STARTERS[component.name](settings, report)
        report(f"{component.name:<9} started in {time.monotonic() - started:4.1f}s  {where}")
    if kafka_wanted and not kafka_started:
        _start_kafka_nodes(settings, report, only)
    # `--only kafka-2` restarts one node of a cluster that has its topics and grants.
    if (not only or "kafka" in only) and not kafka_started:
        provision(settings, report)  # idempotent: a running stack gets what is new


def _start_kafka_nodes(settings: Settings, report: Report, only: list[str] | None) -> None:
    started = time.monotonic()
    for name in start_kafka(settings, report, only):
        node = next(n for n in kafka_nodes(settings) if n.name == name)
        report(f"{name:<9} started in {time.monotonic() - started:4.1f}s  {node.bootstrap}")
    # A running node that did not answer before the others came up must answer now.
    for component in components(settings):
        if is_kafka(component) and _wanted(component, only) and not healthy(settings, component):
            raise StackError(
                f"{component.name} is running but not healthy; see "
                f"{component.log_file(settings)} or run `accord stack down`"
            )


def provision(settings: Settings, report: Report) -> None:
    """Principals, topics and ACLs (idempotent), before anything else signs in."""
    from accord.access.provision import apply

    apply(settings, report)


def status(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(component, state, address, pid) for each component (each Kafka node)."""
    rows = []
    count = max(settings.kafka_brokers, formatted_nodes(settings) or 1)
    for component in components(settings, count):
        pid = running_pid(settings, component)
        if pid is None:
            state = (
                "stopped (port taken by another process)"
                if port_in_use(component.port)
                else "stopped"
            )
        else:
            state = "running" if healthy(settings, component) else "running, not healthy"
        rows.append((component.name, state, address(settings, component), str(pid or "-")))
    return rows


@dataclass(frozen=True)
class ClusterHealth:
    """What the brokers say of themselves: who is up, the controller quorum, and the
    partitions with fewer in-sync replicas than replicas."""

    brokers: list[int]  # registered and not fenced
    fenced: list[int]  # registered, but the controller has heard nothing from them lately
    quorum_leader: int | None
    voters: list[tuple[int, int, bool]]  # (node id, log end offset, caught up)
    partitions: int
    under_replicated: list[tuple[str, int, int, int]]  # (topic, partition, isr, replicas)
    under_min_isr: int


def cluster_health(settings: Settings) -> ClusterHealth:
    """Asked of the cluster as the administrator (describe cluster, describe the
    metadata quorum, metadata of every topic). Raises InfrastructureError when no node
    answers."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        admin = _admin(settings)
    except (KafkaError, OSError, ValueError, CredentialError) as exc:
        raise InfrastructureError(f"no Kafka node answers at {settings.bootstrap_servers}") from exc
    try:
        cluster = admin.describe_cluster()
        known = cluster.get("brokers", [])
        brokers = sorted(b["broker_id"] for b in known if not b.get("is_fenced"))
        fenced = sorted(b["broker_id"] for b in known if b.get("is_fenced"))
        quorum = admin.describe_metadata_quorum()
        part = quorum["topics"][0]["partitions"][0]
        current = part.get("current_voters", [])
        ends = [v.get("log_end_offset", -1) for v in current]
        high = max(ends, default=0)
        # A voter within 100 records of the furthest is caught up (heartbeats add some).
        voters = [
            (v["replica_id"], end, end >= high - 100) for v, end in zip(current, ends, strict=True)
        ]
        leader = part.get("leader_id")
        topics = admin.describe_topics()
    except (KafkaError, OSError) as exc:
        raise InfrastructureError(f"Kafka did not describe itself: {exc}") from exc
    finally:
        admin.close()
    under, below_min, total = [], 0, 0
    for topic in topics:
        for p in topic.get("partitions", []):
            total += 1
            replicas, isr = len(p.get("replica_nodes", [])), len(p.get("isr_nodes", []))
            if isr < replicas:
                under.append((topic["name"], p["partition_index"], isr, replicas))
            if isr < min(2, replicas):
                below_min += 1
    return ClusterHealth(brokers, fenced, leader, voters, total, sorted(under), below_min)


def down(settings: Settings, report: Report, only: list[str] | None = None) -> None:
    count = max(settings.kafka_brokers, formatted_nodes(settings) or 1)
    wanted = [c for c in reversed(components(settings, count)) if _wanted(c, only)]
    # Every Kafka node is asked to stop at once: one stopped after the others would find
    # no controller quorum for its controlled shutdown and wait out its timeout.
    pids = {c.name: running_pid(settings, c) for c in wanted if is_kafka(c)}
    for pid in pids.values():
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    for component in wanted:
        if is_kafka(component) and pids.get(component.name) is None:
            component.pid_file(settings).unlink(missing_ok=True)
            report(f"{component.name:<9} was not running")
        elif _stop(settings, component) or is_kafka(component):  # it may be gone already
            report(f"{component.name:<9} stopped")
        else:
            report(f"{component.name:<9} was not running")
