"""Unit tests for the container files: docker-compose.yml, the Dockerfile and .dockerignore.

They read the files rather than run them, so they pass without a Docker engine; the one
test that asks Docker itself to validate the compose file is skipped when no engine answers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from accord.core.settings import RETIRED_PSEUDONYM_KEYS, Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

SERVICES = {"kafka", "opa", "registry", "worker"}
REQUIRED_KEY = re.compile(r"^\$\{ACCORD_PSEUDONYM_KEY:\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


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


def healthcheck_test(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    return [test] if isinstance(test, str) else list(test)


# --- docker-compose.yml ---------------------------------------------------------------------


def test_the_stack_has_the_four_services(services: dict) -> None:
    assert set(services) == SERVICES


def test_every_service_but_the_worker_has_a_healthcheck(services: dict) -> None:
    for name in SERVICES - {"worker"}:
        test = healthcheck_test(services[name])
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
    assert "healthcheck" not in services["worker"]


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
    assert not host_ports["worker"]


def test_images_are_pinned(services: dict) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        if image is None:
            assert "build" in svc, f"{name} has neither image nor build"
            continue
        reference = image.rsplit("/", 1)[-1]
        assert ":" in reference or "@sha256:" in image, f"{name} image {image} has no tag"
        assert not image.endswith(":latest"), f"{name} image {image} is not pinned"


def test_kafka_runs_kraft_for_the_network_and_the_host(services: dict) -> None:
    kafka = services["kafka"]
    env = environment(kafka)
    assert kafka["image"].startswith("apache/kafka:4.")
    assert env["KAFKA_NODE_ID"] == "1"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith("1@")
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka:9092" in advertised
    host_listener = [a for a in advertised if "19092" in a]
    assert host_listener and re.search(r"://(127\.0\.0\.1|localhost):19092$", host_listener[0])
    protocol_map = dict(
        pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    for listener in env["KAFKA_LISTENERS"].split(","):
        assert listener.split("://")[0] in protocol_map
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for replication in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[replication] == "1"


def test_kafka_keeps_its_data_in_a_named_volume(compose: dict, services: dict) -> None:
    log_dir = environment(services["kafka"])["KAFKA_LOG_DIRS"]
    mounts = [str(v).split(":") for v in services["kafka"]["volumes"]]
    named = [source for source, target, *_ in mounts if target == log_dir]
    assert named and named[0] in (compose.get("volumes") or {})


def test_kafka_healthcheck_makes_a_real_request(services: dict) -> None:
    test = " ".join(healthcheck_test(services["kafka"]))
    assert re.search(r"kafka-(broker-api-versions|topics|metadata-quorum)\.sh", test)
    assert "--bootstrap-server" in test


def test_opa_serves_the_mounted_policies(services: dict) -> None:
    opa = services["opa"]
    mounts = [str(v).split(":") for v in opa["volumes"]]
    assert ["./policies", "/policies", "ro"] in mounts
    assert (REPO / "policies").is_dir()
    command = opa["command"]
    command = command.split() if isinstance(command, str) else command
    assert command[:2] == ["run", "--server"]
    assert "0.0.0.0:8181" in command
    assert "--skip-version-check" in command
    assert command[-2:] == ["--watch", "/policies"]


def test_opa_healthcheck_runs_in_an_image_without_a_shell(services: dict) -> None:
    test = healthcheck_test(services["opa"])
    assert test[0] == "CMD"
    assert "/health" in " ".join(test)


def test_registry_runs_the_accord_registry_on_8081(services: dict) -> None:
    registry = services["registry"]
    argv = [*(registry.get("entrypoint") or []), *(registry.get("command") or [])]
    assert "accord.registry" in " ".join(argv)
    assert argv[-4:] == ["--host", "0.0.0.0", "--port", "8081"]
    assert "build" in registry
    assert environment(registry)["ACCORD_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert registry["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "http://127.0.0.1:8081/subjects" in " ".join(healthcheck_test(registry))


def test_worker_names_the_three_endpoints(services: dict) -> None:
    worker = services["worker"]
    env = environment(worker)
    assert worker["command"] == ["worker"]
    assert "build" in worker
    assert env["ACCORD_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["ACCORD_SCHEMA_REGISTRY_URL"] == "http://registry:8081"
    assert env["ACCORD_OPA_URL"] == "http://opa:8181"
    assert env["ACCORD_ENV"] == "prod"
    assert env["ACCORD_LOG_FORMAT"] == "json"
    for dependency in ("kafka", "opa", "registry"):
        assert worker["depends_on"][dependency]["condition"] == "service_healthy"


def test_worker_takes_the_pseudonym_key_from_the_environment(services: dict) -> None:
    assert REQUIRED_KEY.match(environment(services["worker"])["ACCORD_PSEUDONYM_KEY"])
    for name, svc in services.items():
        value = environment(svc).get("ACCORD_PSEUDONYM_KEY")
        assert value is None or REQUIRED_KEY.match(value), f"{name} sets a literal key"
    for path in (COMPOSE_FILE, DOCKERFILE):
        text = path.read_text()
        assert not any(key in text for key in RETIRED_PSEUDONYM_KEYS)
        code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        assert not [line for line in code if "ACCORD_PSEUDONYM_KEY=" in line], path.name


def test_every_accord_variable_is_a_setting(services: dict) -> None:
    for name, svc in services.items():
        for variable in environment(svc):
            if variable.startswith("ACCORD_"):
                field = variable.removeprefix("ACCORD_").lower()
                assert field in Settings.model_fields, f"{name}: {variable} is not a setting"


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
    assert re.search(r"\binstall (--no-deps )?\.(\s|$)", runs), "the package is not installed"
    for tool in ("build-essential", "gcc", "apt-get install"):
        assert tool not in runs


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
    # Without the key, compose refuses to run rather than start a worker with no key.
    refused = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=60, env=base_env
    )
    assert refused.returncode != 0
    assert "pseudonymisation key" in refused.stderr
