"""Integration fixtures: the real local stack, uuid-named topics per test, a real worker.

The session fixture uses the endpoints in ACCORD_* when ACCORD_TEST_EXTERNAL_STACK=1
(e.g. a cluster started elsewhere), and otherwise starts the local stack with the same
code as `accord stack up` (idempotent: a running stack is reused).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from accord.core.kafka import delete_topics, read_topic
from accord.core.serde import AvroSerde, SchemaRegistryClient
from accord.core.settings import Settings, get_settings
from accord.core.topics import Topics
from accord.stack import local, processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack() -> Settings:
    settings = get_settings()
    if os.environ.get("ACCORD_TEST_EXTERNAL_STACK") != "1":
        local.up(settings, lambda line: print(line, file=sys.stderr))
    return settings


@contextlib.contextmanager
def isolated_settings(stack: Settings) -> Iterator[Settings]:
    """Settings whose every topic and consumer group is unique; topics deleted after."""
    run = uuid.uuid4().hex[:10]
    isolated = stack.model_copy(
        update={"topic_prefix": f"t{run}.", "worker_id": f"accord-test-{run}"}
    )
    try:
        yield isolated
    finally:
        delete_topics(stack.bootstrap_servers, isolated.topic_prefix)


@pytest.fixture
def settings(stack: Settings) -> Iterator[Settings]:
    """Settings whose every topic and consumer group is unique to this test."""
    with isolated_settings(stack) as isolated:
        yield isolated


@pytest.fixture
def serde(stack: Settings) -> AvroSerde:
    return AvroSerde(SchemaRegistryClient(stack.schema_registry_url), stack.schemas_dir)


def settings_env(settings: Settings) -> dict[str, str]:
    return processes.worker_env(settings)


@contextlib.contextmanager
def workers(settings: Settings, log_dir: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `accord worker` processes (as an operator would); stops them after."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = log_dir / f"worker-{len(started)}.log"
        process = processes.spawn_worker(settings, log, loglevel="info")
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            processes.stop_worker(process)
        for log in sorted(log_dir.glob("worker-*.log")):
            tail = log.read_text(errors="replace")[-3000:]
            print(f"--- {log.name} (tail)\n{tail}", file=sys.stderr)


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    with workers(settings, tmp_path) as start:
        yield start


def decoded(settings: Settings, serde: AvroSerde, topic: str) -> list[tuple[bytes, dict | None]]:
    """(key, record) for every message of a topic, None for tombstones."""
    return [
        (m.key, serde.decode(m.value)[1] if m.value is not None else None)
        for m in read_topic(settings.bootstrap_servers, topic, idle_timeout_s=1.0)
    ]


def wait_for(
    settings: Settings,
    serde: AvroSerde,
    topic: str,
    predicate: Callable[[list], bool],
    timeout_s: float = 60.0,
) -> list[tuple[bytes, dict | None]]:
    deadline = time.monotonic() + timeout_s
    records: list = []
    while time.monotonic() < deadline:
        records = decoded(settings, serde, topic)
        if predicate(records):
            return records
        time.sleep(1.0)
    raise AssertionError(f"{topic}: condition not met in {timeout_s}s; saw {len(records)} records")


def topics_of(settings: Settings) -> Topics:
    return Topics(settings)
