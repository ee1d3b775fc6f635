"""What the bad-input and PII campaigns share: a deployment of their own, a pseudonymisation
key for synthetic data, a gateway process, and reading a topic's records."""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from accord.access import provision
from accord.core.credentials import private_dir, write_private
from accord.core.errors import ConfigurationError, InfrastructureError
from accord.core.kafka import delete_topics, read_topic
from accord.core.serde import AvroSerde
from accord.core.settings import Settings
from accord.gateway.tokens import TOKENS_FILE_ENV, TokenStore
from accord.stack import processes
from accord.worker.datadir import remove_group_state

Echo = Callable[[str], None]


def with_campaign_key(settings: Settings, echo: Echo) -> Settings:
    """The settings with a pseudonymisation key: the one configured, else a throwaway key
    for the campaign's synthetic data, kept under the state dir (0600), as the demo does."""
    try:
        settings.require_pseudonym_key()
        return settings
    except ConfigurationError:
        pass
    path = settings.state_dir / "campaign" / "pseudonym-key"
    if not path.exists():
        private_dir(path.parent)
        write_private(path, secrets.token_hex(32) + "\n")
    echo(f"no ACCORD_PSEUDONYM_KEY set: a throwaway key for synthetic data ({path})")
    return settings.model_copy(update={"pseudonym_key_file": path})


@contextlib.contextmanager
def deployment(settings: Settings, name: str, keep: bool = False) -> Iterator[Settings]:
    """A deployment of its own (a topic prefix, a worker group, their grants), made as the
    administrator would with `accord security apply`; removed afterwards unless `keep`."""
    tag = f"{name}{uuid.uuid4().hex[:8]}"
    scoped = settings.model_copy(
        update={"topic_prefix": f"{tag}.", "worker_id": f"accord-campaign-{tag}"}
    )
    provision.apply(scoped)
    try:
        yield scoped
    finally:
        if not keep:
            delete_topics(settings, scoped.topic_prefix)
            delete_topics(settings, f"{scoped.worker_group}-")  # the worker's changelogs
            remove_group_state(settings, scoped.worker_group)  # and its RocksDB tables
            provision.remove_deployment(scoped)


def records(settings: Settings, serde: AvroSerde, topic: str) -> Iterator[tuple[Any, Any]]:
    """(Kafka message, decoded value or None) for every message of `topic`."""
    for message in read_topic(settings, topic, idle_timeout_s=2.0, max_wait_s=600.0):
        value = None if message.value is None else serde.decode(message.value)[1]
        yield message, value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Gateway:
    """`accord gateway` as its own process, as an operator runs it."""

    url: str
    process: subprocess.Popen[bytes]
    tokens: Path
    log_path: Path
    ca: str

    def token(self, org: str) -> str:
        return TokenStore(self.tokens).issue(org, timedelta(days=1))

    def post(self, token: str, dataset: str, body: bytes) -> requests.Response:
        return requests.post(
            f"{self.url}/v1/datasets/{dataset}/records",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=120,
            verify=self.ca,  # given on each call, so REQUESTS_CA_BUNDLE cannot override it
        )


@contextlib.contextmanager
def gateway_process(settings: Settings, folder: Path) -> Iterator[Gateway]:
    """A gateway on a free port with a tokens file of its own; SIGTERM after."""
    private_dir(folder)
    tokens, log_path, port = folder / "gateway-tokens.json", folder / "gateway.log", free_port()
    env = {**processes.worker_env(settings), TOKENS_FILE_ENV: str(tokens)}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "accord", "gateway", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    gateway = Gateway(
        f"https://127.0.0.1:{port}", process, tokens, log_path, str(settings.trusted_ca)
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise InfrastructureError(f"the gateway exited with code {process.returncode}")
            try:
                if requests.get(f"{gateway.url}/health", timeout=1, verify=gateway.ca).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise InfrastructureError("the gateway did not answer /health in 60s")
            time.sleep(0.2)
        yield gateway
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
