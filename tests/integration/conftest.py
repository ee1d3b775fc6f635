"""Integration fixtures: the real local stack, uuid-named topics per test, a real worker.

The session fixture uses the endpoints in ACCORD_* when ACCORD_TEST_EXTERNAL_STACK=1
(e.g. a cluster started elsewhere), and otherwise starts the local stack with the same
code as `accord stack up` (idempotent: a running stack is reused).
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from accord.access import provision
from accord.core.auditrecords import recipient_decisions
from accord.core.credentials import ADMIN, credential_file, credentials_dir, read_credential_file
from accord.core.kafka import as_principal, delete_topics, read_topic
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings, get_settings
from accord.core.topics import Topics
from accord.stack import local, processes
from accord.worker.datadir import remove_group_state

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack() -> Settings:
    """The stack's settings, signed in as the administrator: tests look at every topic.
    What they start (workers, publishers, the gateway) signs in as its own principal."""
    settings = get_settings()
    if os.environ.get("ACCORD_TEST_EXTERNAL_STACK") != "1":
        local.up(settings, lambda line: print(line, file=sys.stderr))
    # Pinned, so a test that moves the state dir still signs in with the stack's.
    pinned = settings.model_copy(
        update={
            "credentials_dir": credentials_dir(settings),
            "ca_file": settings.trusted_ca,
            "opa_token_file": settings.opa_token_path,
        }
    )
    return as_principal(pinned, ADMIN)


def registry_session(settings: Settings, principal: str = ADMIN) -> requests.Session:
    """requests against the registry, signed in as `principal`, verifying the stack's CA."""
    # Exactly this principal's credential, whoever the settings sign in as.
    credential = read_credential_file(credential_file(settings, principal))
    session = requests.Session()
    session.auth = (credential.principal, credential.secret.get_secret_value())
    session.verify = str(settings.trusted_ca)
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would override `verify`
    return session


@functools.cache
def admin_http() -> requests.Session:
    """The administrator's registry session, for tests that drive the REST API directly."""
    return registry_session(get_settings())


@contextlib.contextmanager
def isolated_settings(stack: Settings) -> Iterator[Settings]:
    """Settings whose every topic and consumer group is unique, provisioned as a
    deployment of its own (topics and ACLs); topics and grants removed after."""
    run = uuid.uuid4().hex[:10]
    isolated = stack.model_copy(
        update={"topic_prefix": f"t{run}.", "worker_id": f"accord-test-{run}"}
    )
    provision.apply(isolated)
    try:
        yield isolated
    finally:
        # The deployment's topics and its worker group's (table changelogs, assignor).
        delete_topics(stack, isolated.topic_prefix, f"{isolated.worker_id}-")
        remove_group_state(stack, isolated.worker_id)  # its RocksDB tables
        provision.remove_deployment(isolated)


@pytest.fixture
def settings(stack: Settings) -> Iterator[Settings]:
    """Settings whose every topic and consumer group is unique to this test."""
    with isolated_settings(stack) as isolated:
        yield isolated


@pytest.fixture
def serde(stack: Settings) -> AvroSerde:
    return AvroSerde(registry_client(stack, ADMIN), stack.schemas_dir)


@contextlib.contextmanager
def workers(settings: Settings, log_dir: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `accord worker` processes (as an operator would, through the harness the demo
    and the bench use too); stops them after and prints the tail of their logs."""
    pool = processes.Workers(settings, log_dir, loglevel="info")
    try:
        yield pool.start
    finally:
        pool.stop()
        for name, tail in pool.tails():
            print(f"--- {name} (tail)\n{tail}", file=sys.stderr)


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    with workers(settings, tmp_path) as start:
        yield start


def decoded(settings: Settings, serde: AvroSerde, topic: str) -> list[tuple[bytes, dict | None]]:
    """(key, record) for every message of a topic, None for tombstones."""
    return [
        (m.key, serde.decode(m.value)[1] if m.value is not None else None)
        for m in read_topic(settings, topic, idle_timeout_s=1.0)
    ]


def audit_decisions(settings: Settings, serde: AvroSerde) -> list[dict]:
    """Every recipient decision on the audit topic: a record per case decision gives one
    per recipient it names, an older per-recipient record gives itself."""
    return [
        decision
        for _, record in decoded(settings, serde, Topics(settings).audit)
        if record is not None
        for decision in recipient_decisions(record)
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


# The console's browser tests (a real `accord console`, system Chromium, axe-core).
from .console_harness import browser, console_app  # noqa: E402, F401
