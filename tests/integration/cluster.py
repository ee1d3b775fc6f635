"""A three-broker cluster of its own for the broker-failure tests: own ports, own state
dir under the test's tmp, started and stopped by the project's own `accord stack up
--brokers 3` / `accord stack down`.

Its ports are the session stack's plus ACCORD_TEST_CLUSTER_PORT_OFFSET (default 500): the
nodes on kafka_port+offset (+10 per node, ACCORD_KAFKA_PORT_STEP), the controllers beside
them, OPA and the registry on their ports plus the offset.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from accord.core.credentials import ADMIN, credentials_dir
from accord.core.kafka import as_principal
from accord.core.settings import Settings, get_settings
from accord.stack import local

# Endpoints and files that would point at the session stack, not this cluster.
NOT_INHERITED = (
    "ACCORD_BOOTSTRAP_SERVERS",
    "ACCORD_SCHEMA_REGISTRY_URL",
    "ACCORD_OPA_URL",
    "ACCORD_CREDENTIALS_DIR",
    "ACCORD_CA_FILE",
    "ACCORD_OPA_TOKEN_FILE",
    "ACCORD_KAFKA_BROKERS",
)


def cluster_values(state_dir: Path, brokers: int = 3) -> dict[str, str]:
    base = get_settings()
    offset = int(os.environ.get("ACCORD_TEST_CLUSTER_PORT_OFFSET", "500"))
    return {
        "ACCORD_STATE_DIR": str(state_dir),
        "ACCORD_CACHE_DIR": str(base.cache_dir),
        "ACCORD_KAFKA_PORT": str(base.kafka_port + offset),
        "ACCORD_KAFKA_CONTROLLER_PORT": str(base.kafka_controller_port + offset),
        "ACCORD_KAFKA_PORT_STEP": str(base.kafka_port_step),
        "ACCORD_REGISTRY_PORT": str(base.registry_port + offset),
        "ACCORD_OPA_PORT": str(base.opa_port + offset),
        # Never the session stack's: a second registry or worker would find them taken.
        "ACCORD_CONSOLE_PORT": str(base.console_port + offset),
        "ACCORD_REGISTRY_METRICS_PORT": str(base.registry_metrics_port + offset),
        "ACCORD_WORKER_METRICS_PORT": str(base.worker_metrics_port + offset),
        "ACCORD_GATEWAY_METRICS_PORT": str(base.gateway_metrics_port + offset),
        "ACCORD_CONSOLE_METRICS_PORT": str(base.console_metrics_port + offset),
        # Three JVMs beside the session's stack on a small machine.
        "ACCORD_KAFKA_HEAP": os.environ.get("ACCORD_TEST_CLUSTER_HEAP", "-Xms256m -Xmx512m"),
        "ACCORD_KAFKA_BROKERS": str(brokers),
        "ACCORD_STACK_TIMEOUT_S": "240",
    }


def accord(values: dict[str, str], *args: str, timeout_s: float = 300.0) -> str:
    """`accord <args>` against the cluster, as an operator runs it; its output."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED} | values
    result = subprocess.run(
        [sys.executable, "-m", "accord", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if result.returncode != 0 and args[:2] != ("stack", "status"):
        raise AssertionError(f"accord {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def settings_of(values: dict[str, str]) -> Settings:
    """The cluster's settings, signed in as the administrator."""
    fields = {k.removeprefix("ACCORD_").lower(): v for k, v in values.items()}
    settings = Settings(
        **fields, bootstrap_servers="", schema_registry_url="", opa_url="",
        credentials_dir=None, ca_file=None, opa_token_file=None,
    )  # fmt: skip
    pinned = settings.model_copy(
        update={
            "credentials_dir": credentials_dir(settings),
            "ca_file": settings.trusted_ca,
            "opa_token_file": settings.opa_token_path,
        }
    )
    return as_principal(pinned, ADMIN)


@contextmanager
def three_brokers(state_dir: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    values = cluster_values(state_dir)
    began = time.monotonic()
    try:
        # The brokers, OPA and the registry: the tests need no console.
        only = ("--only", "kafka", "--only", "opa", "--only", "registry")
        out = accord(values, "stack", "up", "--brokers", "3", *only)
        print(f"cluster up in {time.monotonic() - began:.0f}s:\n{out}", file=sys.stderr)
        yield settings_of(values), values
    finally:
        accord(values, "stack", "down", timeout_s=120)


def node_pid(settings: Settings, name: str) -> int:
    component = next(c for c in local.components(settings) if c.name == name)
    pid = local.running_pid(settings, component)
    assert pid is not None, f"{name} is not running"
    return pid


def wait_until_replicated(settings: Settings, timeout_s: float = 120.0) -> float:
    """Seconds until no partition is under-replicated."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        try:
            health = local.cluster_health(settings)
            if not health.under_replicated and not health.fenced:
                return time.monotonic() - began
        except Exception:  # a node still starting
            pass
        time.sleep(1.0)
    raise AssertionError(f"partitions still under-replicated after {timeout_s:.0f}s")
