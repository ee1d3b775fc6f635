"""The worker's /metrics, /healthz and /readyz on the real Kafka and OPA: one resident
published and released, then the counters, the lag and `accord status` read back."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import requests

from accord.core import metrics
from accord.core.topics import PERSON_EVENTS, Topics
from accord.stack import processes

from .conftest import wait_for
from .test_governed_flow import EDINBURGH, person, publish

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape_until(url: str, done, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    samples: dict = {}
    while time.monotonic() < deadline:
        try:
            samples = metrics.scrape(requests.get(url, timeout=3).text)
        except requests.RequestException:
            samples = {}
        if samples and done(samples):
            return samples
        time.sleep(1.0)
    raise AssertionError(f"{url}: condition not met in {timeout_s}s")


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(
        value
        for found, value in samples.get(name, ())
        if all(found.get(k) == v for k, v in labels.items())
    )


def test_worker_exports_its_flow_and_answers_health_and_readiness(settings, serde, tmp_path):
    port = free_port()
    publish(settings, tmp_path, [person(41), person(42, council="Midlothian")])
    worker = processes.spawn_worker(
        settings,
        tmp_path / "worker.log",
        ACCORD_WORKER_METRICS_PORT=str(port),
        ACCORD_LAG_INTERVAL_S="1",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(settings, serde, Topics(settings).share(EDINBURGH), lambda r: len(r) >= 1)
        samples = scrape_until(
            f"{base}/metrics",
            lambda s: (
                total(s, "accord_decisions_total") >= 2
                and "accord_consumer_lag" in s
                and total(s, "accord_share_records_total", recipient=EDINBURGH) >= 1
            ),
        )
        assert total(samples, "accord_events_in_total", stage="check_partner_events") >= 2
        assert total(samples, "accord_events_in_total", stage="join_cases") >= 2
        assert total(samples, "accord_decisions_total", outcome="ALLOW", agreement="DSA-010") >= 1
        assert total(samples, "accord_opa_query_seconds_count") >= 1
        assert total(samples, "process_resident_memory_bytes") > 50 * 2**20
        lag_topics = {labels["topic"] for labels, _ in samples["accord_consumer_lag"]}
        assert Topics(settings).internal(PERSON_EVENTS) in lag_topics
        # No person key or record content in any label.
        for name, series in samples.items():
            if name.startswith("accord_"):
                for labels, _ in series:
                    assert all(len(v) < 80 and "=" not in v for v in labels.values()), labels
        assert requests.get(f"{base}/healthz", timeout=3).status_code == 200
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"kafka": "ok", "opa": "ok"}

        status = subprocess.run(
            [sys.executable, "-m", "accord", "status", "-i", "1"],
            env={
                **processes.process_env(settings),
                "ACCORD_WORKER_METRICS_PORT": str(port),
                "ACCORD_GATEWAY_METRICS_PORT": "0",
                "ACCORD_REGISTRY_METRICS_PORT": "0",
                "ACCORD_CONSOLE_METRICS_PORT": "0",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        print(status.stdout, status.stderr, file=sys.stderr)
        assert status.returncode == 0, status.stdout + status.stderr
        line = next(row for row in status.stdout.splitlines() if row.startswith("worker"))
        assert "ready" in line
    finally:
        processes.stop_worker(worker)
