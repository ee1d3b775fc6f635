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
from accord.core.kafka import connection
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


def components(settings: Settings) -> list[Component]:
    return [
        Component("kafka", settings.kafka_port, "kafka.Kafka"),
        Component("opa", settings.opa_port, "opa run --server"),
        Component("registry", settings.registry_port, "accord.registry"),
        Component("console", settings.console_port, "accord console"),
    ]


def address(settings: Settings, component: Component) -> str:
    if component.name == "kafka":
        return settings.bootstrap_servers
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


def kafka_ready(settings: Settings) -> bool:
    """A real metadata request, signed in as the administrator."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # refusals are expected while starting
    try:
        admin = KafkaAdminClient(
            **connection(settings, ADMIN).kafka_python(),
            request_timeout_ms=3000,
            client_id="accord-stack",
        )
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
) -> str:
    """server.properties: SASL_SSL (SCRAM-SHA-512) on every client listener, the controller
    on mutual TLS that only the broker's own certificate passes, the StandardAuthorizer with
    no access where no ACL grants it, and the administrator the only super user. The first
    client listener carries the broker's own (inter-broker) sign-in as the administrator.
    The local stack and docker-compose.yml (`accord stack secrets`) both write it here."""
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
            "node.id=1",
            f"controller.quorum.bootstrap.servers={controller}",
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
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            # The audit's transactions (accord.worker.auditlog): a few partitions suffice.
            "transaction.state.log.num.partitions=6",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
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


def _kafka_config(settings: Settings, admin: Credential, tls: TlsFiles) -> Path:
    """The local stack's server.properties, on 127.0.0.1."""
    host = "127.0.0.1"
    config = settings.state_dir / "kafka" / "server.properties"
    write_private(
        config,
        kafka_properties(
            settings,
            admin,
            tls,
            listeners=[
                Listener(
                    "SASL_SSL", f"{host}:{settings.kafka_port}", f"{host}:{settings.kafka_port}"
                ),
                Listener(CONTROLLER_LISTENER, f"{host}:{settings.kafka_controller_port}"),
            ],
            controller=f"{host}:{settings.kafka_controller_port}",
            data_dir=settings.state_dir / "kafka" / "data",
            written_by="`accord stack up`",
        ),
    )
    return config


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
    # Kafka's Uuid text form: url-safe base64 of 16 random bytes, unpadded.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def start_kafka(settings: Settings, report: Report) -> None:
    libs = ensure_kafka_jars(settings, report)
    private_dir(settings.state_dir, tighten=True)
    tls = ensure_tls(settings)
    data_dir = settings.state_dir / "kafka" / "data"
    formatted = (data_dir / "meta.properties").exists()
    admin_file = credential_file(settings, ADMIN)
    if formatted and not admin_file.exists():
        raise StackError(
            f"the Kafka data in {data_dir} was made without authentication (or its "
            f"administrator's credentials {admin_file} are gone); remove {settings.state_dir} "
            "(`make clean`) to start afresh"
        )
    admin = ensure_credential(settings, ADMIN)
    if data_dir.exists():
        data_dir.chmod(0o700)  # data written before it was made private stays private now
    config = _kafka_config(settings, admin, tls)
    if not formatted:
        report("formatting Kafka storage (first run only)")
        result = subprocess.run(
            _java_argv(
                settings,
                libs,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                _kafka_cluster_id(),
                "-c",
                str(config),
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
                f"Kafka storage format failed: {(result.stdout + result.stderr)[-800:]}"
            )
    component = components(settings)[0]
    process = _spawn(settings, component, _java_argv(settings, libs, "kafka.Kafka", str(config)))
    _wait(
        # The port check is cheap; the metadata request is the real readiness test.
        lambda: port_in_use(settings.kafka_port) and kafka_ready(settings),
        f"Kafka on {settings.bootstrap_servers}",
        settings.stack_timeout_s,
        component.log_file(settings),
        process,
    )


# --- OPA and the registry ------------------------------------------------------------------


def http_ok(url: str, ca: Path | None = None) -> bool:
    try:
        return requests.get(url, timeout=2, verify=str(ca) if ca else True).status_code == 200
    except requests.RequestException:
        return False


def start_opa(settings: Settings, report: Report) -> None:
    ensure_opa(settings, report)
    component = components(settings)[1]
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
    component = components(settings)[2]
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
    if (CONSOLE_ASSETS / "dist" / "console.css").is_file() and (
        CONSOLE_ASSETS / "node_modules" / "govuk-frontend"
    ).is_dir():
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
    component = next(c for c in components(settings) if c.name == "console")
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


STARTERS = {
    "kafka": start_kafka,
    "opa": start_opa,
    "registry": start_registry,
    "console": start_console,
}


def healthy(settings: Settings, component: Component) -> bool:
    if component.name == "kafka":
        return kafka_ready(settings)
    if component.name == "opa":
        return http_ok(f"{settings.opa_url}/health")
    if component.name == "console":
        return console_ok(settings)
    return registry_ok(settings)


# --- commands -------------------------------------------------------------------------------


def up(settings: Settings, report: Report, only: list[str] | None = None) -> None:
    require_tool("java", "to run the Kafka broker (Java 17 or newer)")
    provisioned = False
    for component in components(settings):
        if only and component.name not in only:
            continue
        where = address(settings, component)
        if running_pid(settings, component) is not None:
            if healthy(settings, component):
                report(f"{component.name:<9} already running  {where}")
                continue
            raise StackError(
                f"{component.name} is running but not healthy; see "
                f"{component.log_file(settings)} or run `accord stack down`"
            )
        if port_in_use(component.port):
            raise PortInUseError(
                f"port {component.port} for {component.name} is taken by another process; "
                f"stop it or set ACCORD_{component.name.upper()}_PORT"
            )
        started = time.monotonic()
        STARTERS[component.name](settings, report)
        report(f"{component.name:<9} started in {time.monotonic() - started:4.1f}s  {where}")
        if component.name == "kafka":
            provision(settings, report)
            provisioned = True
    if (not only or "kafka" in only) and not provisioned:
        provision(settings, report)


def provision(settings: Settings, report: Report) -> None:
    """Principals, topics and ACLs (idempotent), before anything else signs in."""
    from accord.access.provision import apply

    apply(settings, report)


def status(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(component, state, address, pid) for each component."""
    rows = []
    for component in components(settings):
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


def down(settings: Settings, report: Report, only: list[str] | None = None) -> None:
    for component in reversed(components(settings)):
        if only and component.name not in only:
            continue
        if _stop(settings, component):
            report(f"{component.name:<9} stopped")
        else:
            report(f"{component.name:<9} was not running")
