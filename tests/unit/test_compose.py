"""Unit tests for the container files: docker-compose.yml, the Dockerfile and .dockerignore.

They read the files rather than run them, so they pass without a Docker engine; the one
test that asks Docker itself to validate the compose file is skipped when no engine answers.
What the compose file runs is the local stack's secure topology: the broker's configuration
is the one `accord stack secrets` writes for the `setup` service, so these tests make it in
a temporary directory and read it back.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from accord.core.credentials import SERVICE_PRINCIPALS
from accord.core.settings import RETIRED_PSEUDONYM_KEYS, Settings
from accord.stack import opa
from accord.stack.compose import make_secrets
from accord.stack.tls import certificate_names, tls_files

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

SERVICES = {"setup", "kafka", "provision", "opa", "registry", "worker", "gateway", "console"}
ONE_SHOT = {"setup", "provision"}
HUB_VOLUME = "accord-secrets"
KAFKA_VOLUME = "kafka-secrets"
OPA_VOLUME = "opa-authz"
CONSOLE_VOLUME = "console-data"
# The accord image's user (the Dockerfile's USER) and the apache/kafka image's.
ACCORD_UID = "10001"
REQUIRED_KEY = re.compile(r"^\$\{ACCORD_PSEUDONYM_KEY:\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    """The services `docker compose up` starts: those of no profile (the single node)."""
    return {name: svc for name, svc in compose["services"].items() if not svc.get("profiles")}


@pytest.fixture(scope="module")
def cluster_services(compose: dict) -> dict:
    """The services `docker compose --profile cluster up` starts: three brokers."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if not svc.get("profiles") or "cluster" in svc["profiles"]
    }


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def published_ports(service: dict) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) of every published port."""
    result = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            result.append(
                (port.get("host_ip", ""), str(port.get("published", "")), str(port["target"]))
            )
            continue
        parts = str(port).split(":")
        if len(parts) == 3:
            result.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            result.append(("", parts[0], parts[1]))
        else:
            result.append(("", "", parts[0]))
    return result


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """target -> (source, read-only) of every volume or bind mount."""
    result = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            result[volume["target"]] = (volume["source"], bool(volume.get("read_only")))
            continue
        source, target, *mode = str(volume).split(":")
        result[target] = (source, bool(mode) and "ro" in mode[0].split(","))
    return result


def mount_of(service: dict, volume: str) -> tuple[str, bool] | None:
    """(target, read-only) where `service` mounts the named `volume`, if it does."""
    found = [(t, ro) for t, (source, ro) in mounts(service).items() if source == volume]
    assert len(found) <= 1
    return found[0] if found else None


def healthcheck_test(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    return [test] if isinstance(test, str) else list(test)


def argv(service: dict) -> list[str]:
    """entrypoint + command as one list (a string is split the way compose splits it)."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts += shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
    return parts


def script(service: dict) -> str:
    """The shell script of a service started as `sh -ec <script>`."""
    parts = argv(service)
    assert parts[:2] == ["/bin/sh", "-ec"], parts
    return parts[2].replace("$$", "$")  # compose's escape of a literal $


def option(parts: list[str], name: str) -> str:
    return parts[parts.index(name) + 1]


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def code_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def secrets_made(services: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What the setup service makes, made here: its `accord stack secrets` command with its
    environment, each container path moved under a temporary directory."""
    setup = services["setup"]
    root = tmp_path_factory.mktemp("compose-secrets")
    command = next(line for line in script(setup).splitlines() if "stack secrets" in line)
    parts = shlex.split(command)
    env = environment(setup)
    settings = Settings(
        state_dir=root / env["ACCORD_STATE_DIR"].lstrip("/"),
        tls_names=env["ACCORD_TLS_NAMES"],
    )
    kafka_dir = root / option(parts, "--kafka-dir").lstrip("/")
    opa_dir = root / option(parts, "--opa-dir").lstrip("/")
    make_secrets(settings, kafka_dir, opa_dir)
    return {
        "root": root,
        "hub": settings.state_dir,
        "kafka": kafka_dir,
        "opa": opa_dir,
        "kafka_container": Path(option(parts, "--kafka-dir")),
        "opa_container": Path(option(parts, "--opa-dir")),
    }


@pytest.fixture(scope="module")
def broker(secrets_made: dict[str, Path]) -> dict[str, str]:
    return properties((secrets_made["kafka"] / "server.properties").read_text())


def in_container(secrets_made: dict[str, Path], path: str) -> Path:
    """A path of the kafka secrets volume, as the test made it: the broker's own
    configuration names it under `--kafka-dir` (here a temporary directory), the compose
    file under the container path (the same in setup and in kafka)."""
    if Path(path).is_relative_to(secrets_made["kafka"]):
        return Path(path)
    return secrets_made["kafka"] / Path(path).relative_to(secrets_made["kafka_container"])


# --- docker-compose.yml: the services ---------------------------------------------------------


def test_the_stack_has_its_services(services: dict) -> None:
    assert set(services) == SERVICES


def test_every_long_running_service_but_the_worker_has_a_healthcheck(services: dict) -> None:
    for name in SERVICES - ONE_SHOT - {"worker"}:
        test = healthcheck_test(services[name])
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
    assert "healthcheck" not in services["worker"]
    for name in ONE_SHOT:
        assert str(services[name].get("restart", "no")) == "no", f"{name} runs once"


def test_every_published_port_binds_loopback_only(services: dict) -> None:
    published = [(name, port) for name, svc in services.items() for port in published_ports(svc)]
    assert published
    for name, (host_ip, _, _) in published:
        assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip or 'every interface'}"


def test_host_ports_are_the_local_stack_ports(services: dict) -> None:
    # So the `accord` CLI on the host works against the containers with its defaults.
    defaults = {name: str(field.default) for name, field in Settings.model_fields.items()}
    host_ports = {name: {p[1] for p in published_ports(svc)} for name, svc in services.items()}
    assert defaults["kafka_port"] in host_ports["kafka"]
    assert defaults["registry_port"] in host_ports["registry"]
    assert defaults["opa_port"] in host_ports["opa"]
    assert "18090" in host_ports["gateway"]
    assert defaults["console_port"] in host_ports["console"]
    for name in ("worker", "setup", "provision"):
        assert not host_ports[name], name


def test_images_are_pinned(services: dict) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        if image is None:
            assert "build" in svc, f"{name} has neither image nor build"
            continue
        reference = image.rsplit("/", 1)[-1]
        assert ":" in reference or "@sha256:" in image, f"{name} image {image} has no tag"
        assert not image.endswith(":latest"), f"{name} image {image} is not pinned"


def test_startup_order_setup_kafka_provision_then_the_services(services: dict) -> None:
    def after(name: str) -> dict[str, str]:
        return {d: c["condition"] for d, c in (services[name].get("depends_on") or {}).items()}

    assert after("setup") == {}
    assert after("kafka") == {"setup": "service_completed_successfully"}
    assert after("opa") == {"setup": "service_completed_successfully"}
    assert after("provision") == {"kafka": "service_healthy"}
    for name in ("registry", "worker", "gateway", "console"):
        assert after(name)["provision"] == "service_completed_successfully", name
    for name in ("worker", "console"):
        assert after(name)["opa"] == "service_healthy", name
        assert after(name)["registry"] == "service_healthy", name
    assert after("gateway")["registry"] == "service_healthy"


# --- secrets: made on volumes, never in the file or the image ----------------------------------


def test_setup_makes_the_secrets_on_named_volumes(compose: dict, services: dict) -> None:
    setup = services["setup"]
    assert "build" in setup
    commands = script(setup)
    assert "accord stack secrets" in commands
    named = set(compose.get("volumes") or {})
    for volume in (HUB_VOLUME, KAFKA_VOLUME, OPA_VOLUME):
        assert volume in named
        target, read_only = mount_of(setup, volume) or ("", True)
        assert target and not read_only, f"setup must write {volume}"
    hub_target = mount_of(setup, HUB_VOLUME)[0]
    assert environment(setup)["ACCORD_STATE_DIR"] == hub_target
    parts = shlex.split(next(line for line in commands.splitlines() if "stack secrets" in line))
    assert option(parts, "--kafka-dir") == mount_of(setup, KAFKA_VOLUME)[0]
    assert option(parts, "--opa-dir") == mount_of(setup, OPA_VOLUME)[0]


def test_each_volume_is_handed_to_the_user_that_reads_it(services: dict) -> None:
    setup = services["setup"]
    commands = script(setup)
    kafka_user = str(services["kafka"]["user"])
    assert f"chown -R {kafka_user} {mount_of(setup, KAFKA_VOLUME)[0]}" in commands
    assert f"chown -R {ACCORD_UID}:{ACCORD_UID} {mount_of(setup, HUB_VOLUME)[0]}" in commands
    dockerfile_user = [a for k, a in final_stage(dockerfile_instructions()) if k == "USER"][-1]
    assert dockerfile_user == f"{ACCORD_UID}:{ACCORD_UID}"


def test_secrets_are_read_only_except_where_they_are_made(services: dict) -> None:
    writers = {HUB_VOLUME: {"setup", "provision"}, KAFKA_VOLUME: {"setup"}, OPA_VOLUME: {"setup"}}
    readers = {
        HUB_VOLUME: {"registry", "worker", "gateway", "console"},
        KAFKA_VOLUME: {"kafka"},
        OPA_VOLUME: {"opa"},
    }
    for volume in writers:
        for name, svc in services.items():
            found = mount_of(svc, volume)
            if name in writers[volume]:
                assert found and not found[1], f"{name} writes {volume}"
            elif name in readers[volume]:
                assert found and found[1], f"{name} must mount {volume} read-only"
            else:
                assert found is None, f"{name} has no business with {volume}"


def test_no_literal_secret_in_the_compose_file_or_the_dockerfile(services: dict) -> None:
    secretish = re.compile(r"(SECRET|PASSWORD|TOKEN|KEY)(?!_FILE)", re.IGNORECASE)
    for name, svc in services.items():
        for variable, value in environment(svc).items():
            if variable == "ACCORD_PSEUDONYM_KEY":
                assert REQUIRED_KEY.match(value), f"{name} sets a literal key"
            elif secretish.search(variable):
                pytest.fail(f"{name} sets {variable} in the file; secrets live in the volume")
    for path in (COMPOSE_FILE, DOCKERFILE):
        text = path.read_text()
        assert not any(key in text for key in RETIRED_PSEUDONYM_KEYS)
        code = "\n".join(code_lines(path))
        assert "ACCORD_PSEUDONYM_KEY=" not in code, path.name
        assert not re.search(r"password\s*=", code, re.IGNORECASE), path.name
        assert "BEGIN" not in code, f"{path.name} holds a PEM block"
        # Nothing that looks like a generated secret (token_urlsafe(32) is 43 characters).
        assert not re.search(r"[A-Za-z0-9_-]{40,}", code), path.name


def test_every_file_a_service_reads_is_on_a_volume_it_mounts(services: dict) -> None:
    for name, svc in services.items():
        targets = mounts(svc)
        for variable, value in environment(svc).items():
            if variable.endswith(("_FILE", "_DIR")) and variable.startswith("ACCORD_"):
                if name == "worker" and variable == "ACCORD_STATE_DIR":
                    continue  # its own state, in the container
                assert any(value == t or value.startswith(t + "/") for t in targets), (
                    f"{name}: {variable}={value} is on no mount"
                )


def test_each_service_signs_in_with_its_own_credential(
    services: dict, secrets_made: dict[str, Path]
) -> None:
    hub_target = mount_of(services["setup"], HUB_VOLUME)[0]
    expected = {
        "registry": "accord-registry",
        "worker": "accord-worker",
        "gateway": "accord-gateway",
    }
    for name, principal in expected.items():
        path = environment(services[name])["ACCORD_CREDENTIALS_FILE"]
        made = secrets_made["hub"] / Path(path).relative_to(hub_target)
        assert json.loads(made.read_text())["principal"] == principal, name
    assert set(expected.values()) <= set(SERVICE_PRINCIPALS)


# --- Kafka: SASL_SSL, a mutual-TLS controller, the StandardAuthorizer --------------------------


def test_no_plaintext_listener_anywhere(
    services: dict, broker: dict[str, str], compose: dict
) -> None:
    code = "\n".join(code_lines(COMPOSE_FILE))
    assert "PLAINTEXT" not in code.upper()
    protocols = dict(p.split(":") for p in broker["listener.security.protocol.map"].split(","))
    listeners = [entry.split("://")[0] for entry in broker["listeners"].split(",")]
    assert listeners and set(listeners) == set(protocols)
    assert set(protocols.values()) <= {"SASL_SSL", "SSL"}
    for name in listeners:
        if name != broker["controller.listener.names"]:
            assert protocols[name] == "SASL_SSL", name
    assert not [v for v in broker.values() if "PLAINTEXT" in v.upper()]
    # The image's own KAFKA_* configuration is not used: nothing there could add a listener.
    assert not [v for v in environment(services["kafka"]) if v != "KAFKA_HEAP_OPTS"]


def test_client_listeners_are_sasl_ssl_with_scram(broker: dict[str, str]) -> None:
    assert broker["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert broker["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert broker["inter.broker.listener.name"] == "SASL_SSL"
    advertised = broker["advertised.listeners"].split(",")
    assert "SASL_SSL://kafka:9092" in advertised
    host = [a for a in advertised if a.endswith(":19092")]
    assert host and re.search(r"://127\.0\.0\.1:19092$", host[0])
    assert set(broker["ssl.enabled.protocols"].split(",")) <= {"TLSv1.3", "TLSv1.2"}
    protocols = dict(p.split(":") for p in broker["listener.security.protocol.map"].split(","))
    for name, protocol in protocols.items():
        if protocol == "SASL_SSL":
            key = f"listener.name.{name.lower()}.scram-sha-512.sasl.jaas.config"
            assert "ScramLoginModule required" in broker[key], key


def test_controller_is_mutual_tls_with_the_brokers_own_certificate(
    broker: dict[str, str], secrets_made: dict[str, Path]
) -> None:
    controller = broker["controller.listener.names"]
    protocols = dict(p.split(":") for p in broker["listener.security.protocol.map"].split(","))
    assert protocols[controller] == "SSL"
    prefix = f"listener.name.{controller.lower()}."
    assert broker[prefix + "ssl.client.auth"] == "required"
    assert controller not in broker["advertised.listeners"]
    assert broker["controller.quorum.bootstrap.servers"] == "kafka:9093"
    keystore = in_container(secrets_made, broker[prefix + "ssl.keystore.location"])
    names = certificate_names(keystore_certificate(keystore, secrets_made["root"]))
    assert "kafka" in names  # the broker reaches its controller as kafka:9093
    assert "CN=accord-controller" in broker["super.users"]


def keystore_certificate(keystore: Path, scratch: Path) -> Path:
    """The leaf certificate of a PEM keystore (key, leaf, CA), as a file of its own."""
    text = keystore.read_text()
    begin = text.index("-----BEGIN CERTIFICATE-----")
    path = scratch / f"{keystore.name}.leaf.pem"
    path.write_text(text[begin:])
    return path


def test_authorizer_denies_where_no_acl_grants(broker: dict[str, str]) -> None:
    assert (
        broker["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert broker["allow.everyone.if.no.acl.found"] == "false"
    supers = broker["super.users"].split(";")
    assert supers[0] == "User:admin" and len(supers) == 2
    assert broker["auto.create.topics.enable"] == "false"
    assert broker["process.roles"] == "broker,controller"


def test_broker_reads_its_files_from_its_secrets_volume(
    services: dict, broker: dict[str, str], secrets_made: dict[str, Path]
) -> None:
    kafka = services["kafka"]
    target, read_only = mount_of(kafka, KAFKA_VOLUME)
    assert read_only and Path(target) == secrets_made["kafka_container"]
    locations = {k: v for k, v in broker.items() if k.endswith(".location")}
    assert len(locations) == 4
    for key, value in locations.items():
        # Under setup's --kafka-dir, which is where kafka mounts the volume.
        assert Path(value).is_relative_to(secrets_made["kafka"]), key
        assert in_container(secrets_made, value).is_file(), key
    data_target = [t for t, (source, _) in mounts(kafka).items() if source == "kafka-data"]
    assert data_target == [broker["log.dirs"]]


def test_kafka_formats_once_with_the_administrators_scram_credential(
    services: dict, secrets_made: dict[str, Path]
) -> None:
    start = script(services["kafka"])
    target = mount_of(services["kafka"], KAFKA_VOLUME)[0]
    assert re.search(r"if \[ ! -f /var/lib/kafka/data/meta.properties \]", start)
    format_line = start[
        start.index("kafka-storage.sh format") : start.index(
            "fi\n", start.index("kafka-storage.sh format")
        )
    ]
    # --standalone for the single node (the nodes file setup writes says how many).
    assert "standalone=--standalone" in start and "$standalone" in format_line
    assert (secrets_made["kafka"] / "nodes").read_text().strip() == "1"
    assert "--add-scram" in format_line
    scram = re.search(r'--add-scram "\$\(cat \$secrets/([\w.-]+)\)"', format_line)
    assert scram, format_line
    assert "secrets=" + target in start
    made = (secrets_made["kafka"] / scram.group(1)).read_text().strip()
    assert re.fullmatch(r"SCRAM-SHA-512=\[name=admin,password=[A-Za-z0-9_-]{43}\]", made)
    assert "exec /opt/kafka/bin/kafka-server-start.sh $secrets/server.properties" in start


def test_kafka_healthcheck_signs_in_as_the_administrator(
    services: dict, secrets_made: dict[str, Path]
) -> None:
    test = healthcheck_test(services["kafka"])
    assert test[0] == "CMD"
    assert re.search(r"kafka-(broker-api-versions|topics|metadata-quorum)\.sh", test[1])
    assert option(test, "--bootstrap-server") == "kafka:9092"
    client = properties(in_container(secrets_made, option(test, "--command-config")).read_text())
    assert client["security.protocol"] == "SASL_SSL"
    assert client["sasl.mechanism"] == "SCRAM-SHA-512"
    assert 'username="admin"' in client["sasl.jaas.config"]
    assert in_container(secrets_made, client["ssl.truststore.location"]).is_file()


def test_certificates_name_every_compose_service(secrets_made: dict[str, Path]) -> None:
    files = tls_files(Settings(state_dir=secrets_made["hub"]))
    names = certificate_names(files.server_cert)
    assert {"kafka", "registry", "gateway", "opa", "localhost", "127.0.0.1"} <= names


# --- OPA, the registry, the worker, the gateway ------------------------------------------------


def test_opa_runs_as_the_local_stacks_opa(services: dict, secrets_made: dict[str, Path]) -> None:
    service = services["opa"]
    command = argv(service)
    assert command[:4] == ["run", "--server", "--addr", "0.0.0.0:8181"]
    flags = opa.server_flags()
    assert command[4 : 4 + len(flags)] == flags  # token auth, basic authz, tests ignored
    assert "--authentication=token" in flags and "--authorization=basic" in flags
    rest = command[4 + len(flags) :]
    assert rest[0] == "--watch"
    targets = mounts(service)
    assert targets["/policies"] == ("./policies", True)
    authz_dir = [t for t, (source, _) in targets.items() if source == "./deploy/opa"]
    assert authz_dir and targets[authz_dir[0]][1]
    assert (REPO / "deploy" / "opa" / "authz.rego").is_file()
    data = [a for a in rest if a.startswith("system.accord:")]
    assert rest[1:] == ["/policies", authz_dir[0], *data] and len(data) == 1
    data_file = Path(data[0].removeprefix("system.accord:"))
    assert data_file.parent == secrets_made["opa_container"]
    made = json.loads((secrets_made["opa"] / data_file.name).read_text())
    token = (secrets_made["hub"] / "opa" / "token").read_text().strip()
    import hashlib

    assert made == {"token_sha256": [hashlib.sha256(token.encode()).hexdigest()]}


def test_opa_healthcheck_needs_no_token_and_no_shell(services: dict) -> None:
    test = healthcheck_test(services["opa"])
    assert test[0] == "CMD"
    joined = " ".join(test)
    assert "/health" in joined
    assert "Authorization" not in joined and "Bearer" not in joined


def test_registry_serves_https_with_its_user_file(
    services: dict, secrets_made: dict[str, Path]
) -> None:
    registry = services["registry"]
    command = argv(registry)
    assert "accord.registry" in " ".join(command)
    assert command[-4:] == ["--host", "0.0.0.0", "--port", "8081"]
    assert "build" in registry
    env = environment(registry)
    hub_target, read_only = mount_of(registry, HUB_VOLUME)
    assert read_only and env["ACCORD_STATE_DIR"] == hub_target
    settings = Settings(state_dir=secrets_made["hub"])
    users = json.loads(settings.registry_users_path.read_text())["users"]
    assert set(SERVICE_PRINCIPALS) <= set(users)
    check = " ".join(healthcheck_test(registry))
    assert "https://127.0.0.1:8081/" in check
    assert "cafile=" in check and env["ACCORD_CA_FILE"] in check


def test_worker_names_the_secure_endpoints(services: dict) -> None:
    worker = services["worker"]
    env = environment(worker)
    assert worker["command"] == ["worker"]
    assert "build" in worker
    assert env["ACCORD_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["ACCORD_SCHEMA_REGISTRY_URL"] == "https://registry:8081"
    assert env["ACCORD_OPA_URL"] == "http://opa:8181"
    assert env["ACCORD_ENV"] == "prod"
    assert env["ACCORD_LOG_FORMAT"] == "json"
    hub_target = mount_of(worker, HUB_VOLUME)[0]
    assert env["ACCORD_CA_FILE"] == f"{hub_target}/tls/ca.pem"
    assert env["ACCORD_OPA_TOKEN_FILE"] == f"{hub_target}/opa/token"


def test_every_hub_service_uses_https_and_the_stacks_ca(services: dict) -> None:
    for name, svc in services.items():
        env = environment(svc)
        if "ACCORD_SCHEMA_REGISTRY_URL" in env:
            assert env["ACCORD_SCHEMA_REGISTRY_URL"].startswith("https://"), name
            assert env["ACCORD_CA_FILE"].endswith("/tls/ca.pem"), name
        for value in env.values():
            assert "http://registry" not in value and "http://gateway" not in value, name


def test_gateway_serves_https(services: dict) -> None:
    gateway = services["gateway"]
    assert argv(gateway)[0] == "gateway"
    assert option(argv(gateway), "--host") == "0.0.0.0"
    assert option(argv(gateway), "--port") == "18090"
    check = " ".join(healthcheck_test(gateway))
    assert "https://127.0.0.1:18090/health" in check and "cafile=" in check


def test_provision_applies_the_access_model_as_the_administrator(services: dict) -> None:
    provision = services["provision"]
    assert provision["command"] == ["security", "apply"]
    env = environment(provision)
    assert env["ACCORD_STATE_DIR"] == mount_of(provision, HUB_VOLUME)[0]
    assert "ACCORD_PRINCIPAL" not in env and "ACCORD_CREDENTIALS_FILE" not in env
    targets = mounts(provision)
    assert targets["/app/policies"] == ("./policies", True)
    assert targets["/app/partners"] == ("./partners", True)


def test_the_worker_requires_the_pseudonym_key_from_the_environment(services: dict) -> None:
    # The worker keys people by it; the console's who-received hashes a typed CHI with it.
    holders = {"worker", "console"}
    for name in holders:
        assert REQUIRED_KEY.match(environment(services[name])["ACCORD_PSEUDONYM_KEY"]), name
    for name, svc in services.items():
        if name not in holders:
            assert "ACCORD_PSEUDONYM_KEY" not in environment(svc), name


def test_every_accord_variable_is_a_setting(services: dict) -> None:
    for name, svc in services.items():
        for variable in environment(svc):
            if variable.startswith("ACCORD_"):
                field = variable.removeprefix("ACCORD_").lower()
                assert field in Settings.model_fields, f"{name}: {variable} is not a setting"


def test_secrets_made_twice_are_the_same_secrets(
    services: dict, secrets_made: dict[str, Path]
) -> None:
    # setup runs at every `docker compose up`: it must keep what the volumes hold.
    before = {p: p.read_text() for p in sorted(secrets_made["root"].rglob("*")) if p.is_file()}
    env = environment(services["setup"])
    settings = Settings(state_dir=secrets_made["hub"], tls_names=env["ACCORD_TLS_NAMES"])
    make_secrets(settings, secrets_made["kafka"], secrets_made["opa"])
    for path, text in before.items():
        if path.name.endswith(".leaf.pem") or path.parent.name == "registry":
            continue  # scratch files; the user file's salts are new, the secrets the same
        assert path.read_text() == text, path


# --- Dockerfile and .dockerignore --------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_dockerfile_runs_accord_as_a_non_root_user() -> None:
    stage = final_stage(dockerfile_instructions())
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users, "the final stage sets no USER, so it runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    entrypoints = [arguments for keyword, arguments in stage if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoints[-1]) == ["accord"]
    commands = [arguments for keyword, arguments in stage if keyword == "CMD"]
    assert json.loads(commands[-1]) == ["worker"]


def test_dockerfile_base_environment_and_data() -> None:
    instructions = dockerfile_instructions()
    text = DOCKERFILE.read_text()
    assert "python:3.11-slim" in text
    env = " ".join(
        arguments for keyword, arguments in final_stage(instructions) if keyword == "ENV"
    )
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "ACCORD_HOME=/app"):
        assert setting in env
    copies = [
        arguments.split() for keyword, arguments in final_stage(instructions) if keyword == "COPY"
    ]
    assert ["schemas/", "/app/schemas/"] in copies
    assert ["policies/", "/app/policies/"] in copies
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    for tool in ("build-essential", "gcc", "apt-get install"):
        assert tool not in runs


def test_dockerfile_installs_only_what_the_lock_pins_with_their_hashes() -> None:
    instructions = dockerfile_instructions()
    build = instructions[: max(i for i, (k, _) in enumerate(instructions) if k == "FROM")]
    copies = [a.split() for k, a in build if k == "COPY"]
    assert any("requirements.lock" in c[:-1] for c in copies), "the lock is not in the build"
    installs = [a for k, a in build if k == "RUN" and " install " in f" {a} "]
    assert len(installs) == 2, installs
    dependencies, package = installs
    assert "--require-hashes" in dependencies.split()
    assert "--no-deps" in dependencies.split()
    assert option(dependencies.split(), "-r") == "requirements.lock"
    assert re.search(r"\binstall (--\S+ )*\.$", package), "the package is not installed"
    assert "--no-deps" in package.split()
    # With isolation pip would fetch setuptools unpinned; the lock has it.
    assert "--no-build-isolation" in package.split()
    assert re.search(r"^setuptools==", (REPO / "requirements.lock").read_text(), re.M)
    for run in (a for k, a in instructions if k == "RUN"):
        assert "requirements.txt" not in run


def stages(instructions: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions by its name (`FROM image AS name`; the unnamed last
    stage is "final"), with the FROM line first."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            parts = arguments.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else "final"
            current = out.setdefault(name, [])
        current.append((keyword, arguments))
    return out


def test_dockerfile_builds_the_console_assets_and_ships_what_the_console_serves() -> None:
    from accord.console import app

    instructions = dockerfile_instructions()
    by_stage = stages(instructions)
    assert "assets" in by_stage, "no stage builds the console's assets"
    assets = by_stage["assets"]
    # The Node image: an exact release or a digest, never a moving tag such as node:22.
    image = assets[0][1].split()[0]
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    if image.startswith("${"):
        image = args[image.strip("${}")]
    assert image.startswith("node"), image
    assert re.fullmatch(r"node(:\d+\.\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?", image), image
    assert re.search(r":\d+\.\d+\.\d+|@sha256:", image), f"{image} is not pinned"
    # The lock goes in before `npm ci`, which installs exactly what it pins; then the build.
    runs = [(i, a) for i, (k, a) in enumerate(assets) if k == "RUN"]
    copies = [(i, a.split()) for i, (k, a) in enumerate(assets) if k == "COPY"]
    lock = "services/accord/console/assets/package-lock.json"
    lock_at = next(i for i, c in copies if lock in c[:-1])
    ci_at = next(i for i, a in runs if re.search(r"\bnpm ci\b", a))
    build_at = next(i for i, a in runs if "npm run build" in a)
    assert lock_at < ci_at < build_at
    assert not any(re.search(r"\bnpm (install|i)\b", a) for _, a in runs), "npm install resolves"
    assert any("scss" in c[0] for i, c in copies if i < build_at), "the stylesheet's sources"
    # What the console serves (accord.console.app) is copied from that stage...
    package_dir = Path(app.__file__).parent
    served = {
        (app.ASSETS_DIR / "dist").relative_to(app.ASSETS_DIR),
        app.GOVUK_JS.parent.relative_to(app.ASSETS_DIR),
        app.MOJ_IMAGES.relative_to(app.ASSETS_DIR),
    }
    build = by_stage["build"]
    taken = {
        Path(a.split()[-2]).relative_to("/assets")
        for k, a in build
        if k == "COPY" and a.split()[0] == "--from=assets"
    }
    assert served <= taken, served - taken
    # ...and laid into the installed package at the console's ASSETS_DIR, checked there.
    lay = next(a for k, a in build if k == "RUN" and "ASSETS_DIR" in a)
    assert "assets_built()" in lay
    assert app.ASSETS_DIR.relative_to(package_dir) == Path("assets")
    # The runtime stage carries the environment the assets were laid into.
    final = by_stage["final"]
    assert ["--from=build", "/opt/venv", "/opt/venv"] in [
        a.split() for k, a in final if k == "COPY"
    ]
    install_at = next(i for i, (k, a) in enumerate(build) if k == "RUN" and a.endswith(" ."))
    assert install_at < next(
        i for i, (k, a) in enumerate(build) if k == "RUN" and "ASSETS_DIR" in a
    )


def test_dockerignore_keeps_a_checkouts_own_node_modules_out() -> None:
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    for built in ("node_modules", "dist"):
        entry = f"services/accord/console/assets/{built}"
        assert entry in ignore
        # After the line that lets services/ in, or that line would win.
        assert ignore.index(entry) > ignore.index("!services/")


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    assert "*" in ignore, ".dockerignore should list what goes in, not what stays out"
    for keyword, arguments in dockerfile_instructions():
        if keyword != "COPY" or arguments.startswith("--from"):
            continue
        *sources, _ = arguments.split()
        for source in sources:
            assert f"!{source}" in ignore or f"!{source.rstrip('/')}" in ignore, source
            assert (REPO / source).exists(), source


# --- Docker itself, where there is one -----------------------------------------------------------


def docker_engine_answers() -> str | None:
    """None when a Docker engine and compose are usable, otherwise why not."""
    docker = shutil.which("docker")
    if docker is None:
        return "the docker command is not installed"
    try:
        info = subprocess.run([docker, "info"], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30s"
    if info.returncode != 0:
        return "no Docker engine answers (`docker info` failed)"
    version = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    if version.returncode != 0:
        return "the Docker compose plugin is not installed"
    return None


def test_docker_compose_accepts_the_file() -> None:
    reason = docker_engine_answers()
    if reason:
        pytest.skip(f"{reason}; the compose file is checked by parsing only")
    base_env = {k: v for k, v in os.environ.items() if k != "ACCORD_PSEUDONYM_KEY"}
    argv = ["docker", "compose", "--env-file", os.devnull, "-f", str(COMPOSE_FILE), "config", "-q"]
    ok = subprocess.run(
        argv,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base_env, "ACCORD_PSEUDONYM_KEY": "unit-test-key-not-a-secret"},
    )
    assert ok.returncode == 0, ok.stderr
    cluster = subprocess.run(
        [*argv[:-2], "--profile", "cluster", "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base_env, "ACCORD_PSEUDONYM_KEY": "unit-test-key-not-a-secret"},
    )
    assert cluster.returncode == 0, cluster.stderr
    # Without the key, compose refuses to run rather than start a worker with no key.
    refused = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=60, env=base_env
    )
    assert refused.returncode != 0
    assert "pseudonymisation key" in refused.stderr


# --- the cluster profile: three brokers ---------------------------------------------------

CLUSTER = ("kafka", "kafka-2", "kafka-3")


@pytest.fixture(scope="module")
def cluster_made(services: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What setup makes with ACCORD_COMPOSE_BROKERS=3, made here."""
    setup = services["setup"]
    command = next(line for line in script(setup).splitlines() if "stack secrets" in line)
    parts = shlex.split(command)
    assert option(parts, "--brokers") == "${ACCORD_COMPOSE_BROKERS:-1}"  # 1 unless asked
    root = tmp_path_factory.mktemp("compose-cluster")
    env = environment(setup)
    settings = Settings(
        state_dir=root / env["ACCORD_STATE_DIR"].lstrip("/"), tls_names=env["ACCORD_TLS_NAMES"]
    )
    kafka_dir = root / option(parts, "--kafka-dir").lstrip("/")
    make_secrets(settings, kafka_dir, root / "opa", brokers=3)
    return {"hub": settings.state_dir, "kafka": kafka_dir}


def test_the_cluster_profile_adds_two_brokers(compose: dict, cluster_services: dict) -> None:
    extra = set(cluster_services) - SERVICES
    assert extra == {"kafka-2", "kafka-3"}
    for name in extra:
        assert compose["services"][name]["profiles"] == ["cluster"]
    data = [
        mount_of(cluster_services[n], f"{n}-data" if n != "kafka" else "kafka-data")
        for n in CLUSTER
    ]
    assert all(data) and {d[0] for d in data} == {"/var/lib/kafka/data"}
    assert set(compose["volumes"]) >= {"kafka-data", "kafka-2-data", "kafka-3-data"}


def test_cluster_brokers_publish_loopback_ports_a_step_apart(cluster_services: dict) -> None:
    ports = {n: published_ports(cluster_services[n]) for n in CLUSTER}
    for n, found in ports.items():
        assert found and all(ip == "127.0.0.1" for ip, _, _ in found), n
    assert [ports[n][0][1] for n in CLUSTER] == ["19092", "19102", "19112"]


def test_cluster_brokers_mount_their_secrets_read_only_and_sign_in(
    cluster_services: dict,
) -> None:
    for name in CLUSTER:
        service = cluster_services[name]
        assert mount_of(service, KAFKA_VOLUME) == ("/etc/kafka/secrets", True), name
        assert service["user"] == "1000:1000"
        assert not [v for v in environment(service) if v != "KAFKA_HEAP_OPTS"]
        test = healthcheck_test(service)
        assert option(test, "--bootstrap-server") == f"{name}:9092"
        assert option(test, "--command-config") == "/etc/kafka/secrets/admin.properties"
        start = script(service)
        assert "--add-scram" in start and "PLAINTEXT" not in start.upper()
    for name in ("kafka-2", "kafka-3"):
        start = script(cluster_services[name])
        assert "--standalone" not in start  # static voters: every node formats alike
        assert f"$secrets/server-{name[-1]}.properties" in start


def test_cluster_nodes_are_one_quorum_with_replication_three(
    cluster_made: dict[str, Path],
) -> None:
    nodes = [
        properties((cluster_made["kafka"] / f).read_text())
        for f in ("server.properties", "server-2.properties", "server-3.properties")
    ]
    assert (cluster_made["kafka"] / "nodes").read_text().strip() == "3"
    assert [n["node.id"] for n in nodes] == ["1", "2", "3"]
    voters = "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
    for host, node in zip(CLUSTER, nodes, strict=True):
        assert node["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in node
        assert node["process.roles"] == "broker,controller"
        assert f"SASL_SSL://{host}:9092" in node["advertised.listeners"]
        assert node["listeners"].endswith(f"CONTROLLER://{host}:9093")
        assert node["default.replication.factor"] == "3"
        assert node["min.insync.replicas"] == "2"
        assert node["offsets.topic.replication.factor"] == "3"
        assert node["transaction.state.log.replication.factor"] == "3"
        assert node["transaction.state.log.min.isr"] == "2"
        assert node["allow.everyone.if.no.acl.found"] == "false"
        assert "PLAINTEXT" not in node["listener.security.protocol.map"].upper()
        assert node["listener.name.controller.ssl.client.auth"] == "required"
    files = tls_files(Settings(state_dir=cluster_made["hub"]))
    assert set(CLUSTER) <= certificate_names(files.server_cert)


def test_compose_refuses_other_broker_counts(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="1 or 3 brokers"):
        make_secrets(Settings(state_dir=tmp_path), tmp_path / "k", tmp_path / "o", brokers=2)


# --- the console ------------------------------------------------------------------------------


def test_the_console_serves_https_with_the_stacks_certificate(
    services: dict, secrets_made: dict[str, Path]
) -> None:
    console = services["console"]
    assert "build" in console and argv(console) == ["console"]
    env = environment(console)
    assert env["ACCORD_ENV"] == "prod"
    assert env["ACCORD_CONSOLE_HOST"] == "0.0.0.0"  # published on 127.0.0.1 only (above)
    port = env["ACCORD_CONSOLE_PORT"]
    assert published_ports(console) == [("127.0.0.1", port, port)]
    assert "ACCORD_CONSOLE_TLS" not in env  # HTTPS, the default
    # Its TLS files are the ones setup made, on the secrets volume it reads (read-only).
    hub_target, read_only = mount_of(console, HUB_VOLUME)
    assert read_only and env["ACCORD_STATE_DIR"] == hub_target
    files = tls_files(Settings(state_dir=secrets_made["hub"]))
    assert files.server_cert.is_file() and files.server_key.is_file()
    assert {"localhost", "127.0.0.1"} <= certificate_names(files.server_cert)
    check = " ".join(healthcheck_test(console))
    assert f"https://127.0.0.1:{port}/health" in check
    assert "cafile=" in check and env["ACCORD_CA_FILE"] in check
    assert env["ACCORD_OPA_TOKEN_FILE"] == f"{hub_target}/opa/token"
    assert mounts(console)["/app/policies"] == ("./policies", True)


def test_the_console_signs_in_with_its_principals_saved_credentials(
    services: dict, secrets_made: dict[str, Path]
) -> None:
    # As on the local stack: no one credential chosen by the environment (the console
    # signs in as several principals, each with its own saved file on the secrets volume).
    env = environment(services["console"])
    for variable in ("ACCORD_PRINCIPAL", "ACCORD_CREDENTIALS_FILE", "ACCORD_SECRET_FILE"):
        assert variable not in env
    saved = secrets_made["hub"] / "credentials"
    for principal in ("accord-console", "accord-audit", "accord-reviewer"):
        assert json.loads((saved / f"{principal}.json").read_text())["principal"] == principal


def test_the_consoles_users_and_logs_are_on_its_own_writable_volume(
    compose: dict, services: dict
) -> None:
    console, setup = services["console"], services["setup"]
    assert CONSOLE_VOLUME in compose["volumes"]
    target, read_only = mount_of(console, CONSOLE_VOLUME)
    hub_target = mount_of(console, HUB_VOLUME)[0]
    settings = Settings(state_dir=Path(hub_target))
    assert not read_only and target == str(settings.console_dir)  # access log, change log
    users = environment(console)["ACCORD_CONSOLE_USERS_FILE"]
    assert users.startswith(target + "/")  # no users file in the repository or the image
    # setup mounts it at the same place, so the accord user owns it (its chown -R).
    assert mount_of(setup, CONSOLE_VOLUME) == (target, False)
    assert target.startswith(mount_of(setup, HUB_VOLUME)[0] + "/")
    assert f"chown -R {ACCORD_UID}:{ACCORD_UID} {mount_of(setup, HUB_VOLUME)[0]}" in script(setup)
    for name, svc in services.items():
        if name not in ("console", "setup"):
            assert mount_of(svc, CONSOLE_VOLUME) is None, name
