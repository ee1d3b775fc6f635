"""`accord status`: lag, throughput and the last error of every hub service, from /metrics.

Each service serves its metrics on its own port (`accord.core.metrics`); this reads each
endpoint twice, `interval` seconds apart, and summarises: readiness (GET /readyz),
records in and out per second over the interval, consumer lag (the sum over partitions
of the largest lag any worker reported for that partition), resident memory and the
latest error kind with its age. Workers take consecutive ports from
ACCORD_WORKER_METRICS_PORT, so every worker that answers is listed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import requests

from accord.core.metrics import scrape
from accord.core.settings import Settings

Samples = dict[str, list[tuple[dict[str, str], float]]]

WORKER_PORTS = 16  # as many as a worker tries (accord.worker.app.run_worker)


@dataclass(frozen=True)
class Row:
    service: str
    url: str
    ready: str
    in_per_s: float | None
    out_per_s: float | None
    lag: int | None
    memory_mb: float | None
    last_error: str


def targets(settings: Settings) -> list[tuple[str, str]]:
    """(service, base URL) of every metrics endpoint the settings name (0: disabled)."""
    host = settings.metrics_host if settings.metrics_host != "0.0.0.0" else "127.0.0.1"
    found = []
    for name, port in (
        ("worker", settings.worker_metrics_port),
        ("gateway", settings.gateway_metrics_port),
        ("registry", settings.registry_metrics_port),
        ("console", settings.console_metrics_port),
    ):
        if port:
            found.append((name, f"http://{host}:{port}"))
    return found


def _total(samples: Samples, name: str) -> float:
    return sum(value for _, value in samples.get(name, ()))


def lag_of(samples: Samples) -> int | None:
    """Sum over (group, topic, partition) of the lag reported; None if none was."""
    if "accord_consumer_lag" not in samples:
        return None
    worst: dict[tuple[str, str, str], float] = {}
    for labels, value in samples["accord_consumer_lag"]:
        key = (labels.get("group", ""), labels.get("topic", ""), labels.get("partition", ""))
        worst[key] = max(worst.get(key, 0.0), value)
    return int(sum(worst.values()))


def last_error(samples: Samples, now: float) -> str:
    """The newest error kind and how long ago, or '-'."""
    newest = max(
        samples.get("accord_last_error_timestamp_seconds", ()),
        key=lambda item: item[1],
        default=None,
    )
    if newest is None:
        return "-"
    labels, when = newest
    errors = sum(
        v for lab, v in samples.get("accord_errors_total", ()) if lab.get("kind") == labels["kind"]
    )
    return f"{labels['kind']} ({int(errors)}x, last {max(0, int(now - when))}s ago)"


def summarise(
    service: str, url: str, ready: str, before: Samples, after: Samples, seconds: float, now: float
) -> Row:
    """One row from two scrapes `seconds` apart (pure: unit-tested)."""

    def rate(name: str) -> float | None:
        if name not in after:
            return None
        return max(0.0, _total(after, name) - _total(before, name)) / max(seconds, 1e-9)

    memory = after.get("process_resident_memory_bytes")
    return Row(
        service=service,
        url=url,
        ready=ready,
        in_per_s=rate("accord_events_in_total"),
        out_per_s=rate("accord_events_out_total"),
        lag=lag_of(after),
        memory_mb=memory[0][1] / 2**20 if memory else None,
        last_error=last_error(after, now),
    )


def _get(url: str) -> tuple[int, str] | None:
    try:
        response = requests.get(url, timeout=3)
    except requests.RequestException:
        return None
    return response.status_code, response.text


def _readiness(base: str) -> str:
    answer = _get(f"{base}/readyz")
    if answer is None:
        return "down"
    status, body = answer
    if status == 200:
        return "ready"
    try:
        checks: dict[str, Any] = json.loads(body).get("checks", {})
    except ValueError:
        return "not ready"
    failing = [name for name, result in checks.items() if result != "ok"]
    return f"not ready ({', '.join(failing)})"


def collect(settings: Settings, interval_s: float = 2.0) -> list[Row]:
    """Scrape every endpoint twice, `interval_s` apart, and summarise each."""
    endpoints: list[tuple[str, str]] = []
    for service, base in targets(settings):
        if service != "worker":
            endpoints.append((service, base))
            continue
        host, port = base.rsplit(":", 1)
        for n in range(WORKER_PORTS):
            candidate = f"{host}:{int(port) + n}"
            if _get(f"{candidate}/healthz") is None and n:
                break
            endpoints.append((f"worker-{n + 1}" if n else "worker", candidate))
    first: dict[str, Samples] = {}
    for _, base in endpoints:
        answer = _get(f"{base}/metrics")
        first[base] = scrape(answer[1]) if answer and answer[0] == 200 else {}
    time.sleep(interval_s)
    rows = []
    for service, base in endpoints:
        answer = _get(f"{base}/metrics")
        if answer is None or answer[0] != 200:
            rows.append(Row(service, base, "down", None, None, None, None, "-"))
            continue
        rows.append(
            summarise(
                service,
                base,
                _readiness(base),
                first[base],
                scrape(answer[1]),
                interval_s,
                time.time(),
            )
        )
    return rows
