"""Prometheus metrics and the health and readiness endpoints of every hub service.

Every metric the hub exports is declared here, once, so the dashboard
(`deploy/grafana/accord.json`), `accord status` and the alert thresholds in
docs/operations.md name the same series, and a unit test checks that every expression of
the dashboard uses only names from `EXPORTED`. Labels carry stage names, organisation,
recipient and agreement ids, reason codes and topic partitions, never a person key or
anything read from a record's content.

A service exposes them with `serve(service, port, checks)`: a small HTTP server in a
daemon thread on `ACCORD_METRICS_HOST` (default 127.0.0.1) answering

- `GET /metrics`: the Prometheus text format (process memory and CPU included, from
  prometheus-client's process collector);
- `GET /healthz`: 200 while the process runs (and, for a service that beats, while its
  event loop has beaten within `stall_after_s`), else 503;
- `GET /readyz`: 200 when every readiness check answered (Kafka, and OPA for the services
  that ask it), else 503 with the failing check's name; results are cached for a few
  seconds so a probe every second costs one round trip per check at most.

The server runs in a thread, so it answers even while the service's event loop waits on a
batch; that is why liveness also looks at the loop's heartbeat. A port of 0 disables the
server; a port already in use is logged (`metrics_port_in_use`) and the service carries
on without metrics rather than failing.

Another service (the console) exposes its metrics with two lines:

    health = metrics.Health("console", metrics.standard_checks(settings, CONSOLE))
    metrics.serve(health, settings.metrics_host, settings.console_metrics_port)

and counts its own work with the shared counters (`EVENTS_IN.labels("console", "page")`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from accord.core.logging import get_logger

log = get_logger("accord.metrics")

# Per stage of a service: records taken in and records written out (by kind of output).
EVENTS_IN = Counter("accord_events_in", "Records a stage took in.", ["service", "stage"])
EVENTS_OUT = Counter(
    "accord_events_out", "Records a stage wrote or answered, by kind.", ["service", "stage", "kind"]
)
BATCH_SECONDS = Histogram(
    "accord_batch_seconds",
    "Wall time of one batch of a stage, OPA waits included.",
    ["service", "stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CONSUMER_LAG = Gauge(
    "accord_consumer_lag",
    "Records in a partition not yet committed by the service's consumer group.",
    ["service", "group", "topic", "partition"],
)
DECISIONS = Counter(
    "accord_decisions",
    "Policy decisions written to the audit topic, by outcome and agreement.",
    ["outcome", "agreement"],
)
OPA_QUERY_SECONDS = Histogram(
    "accord_opa_query_seconds",
    "Latency of one OPA query (a whole batch's decisions), by package and rule.",
    ["package", "rule"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OPA_ERRORS = Counter(
    "accord_opa_errors", "OPA queries that failed (no answer, undefined rule).", ["package", "kind"]
)
QUARANTINED = Counter(
    "accord_quarantined",
    "Records set aside to a rejects topic or the hub's quarantine, by reason code.",
    ["service", "reason"],
)
SHARE_RECORDS = Counter(
    "accord_share_records",
    "Records written to recipients' share topics: shares and tombstones (withdrawals).",
    ["recipient", "kind"],
)
ERRORS = Counter(
    "accord_errors", "Errors a service logged and survived, by kind.", ["service", "kind"]
)
LAST_ERROR = Gauge(
    "accord_last_error_timestamp_seconds",
    "When a service last logged an error of this kind (unix time).",
    ["service", "kind"],
)
REQUESTS = Counter(
    "accord_http_requests",
    "HTTP requests answered, by route and status.",
    ["service", "route", "status"],
)
AUTH_FAILURES = Counter(
    "accord_auth_failures", "Refused sign-ins, by reason.", ["service", "reason"]
)
UP = Gauge(
    "accord_ready", "1 when the service's readiness checks last answered, else 0.", ["service"]
)
HEARTBEAT = Gauge(
    "accord_heartbeat_timestamp_seconds", "When the service's event loop last beat.", ["service"]
)

# Names as scraped (a Counter `x` is exposed as `x_total` and `x_created`; a Histogram as
# `x_bucket`, `x_sum`, `x_count`), plus prometheus-client's process collector.
EXPORTED: frozenset[str] = frozenset(
    {
        *(f"{c._name}_total" for c in (EVENTS_IN, EVENTS_OUT, DECISIONS, OPA_ERRORS)),
        *(
            f"{c._name}_total"
            for c in (QUARANTINED, SHARE_RECORDS, ERRORS, REQUESTS, AUTH_FAILURES)
        ),
        *(
            f"{h._name}_{suffix}"
            for h in (BATCH_SECONDS, OPA_QUERY_SECONDS)
            for suffix in ("bucket", "sum", "count")
        ),
        *(g._name for g in (CONSUMER_LAG, LAST_ERROR, UP, HEARTBEAT)),
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "up",  # Prometheus's own, per scrape target
    }
)


def error(service: str, kind: str) -> None:
    """Count an error a service survived; `kind` is an event name, never record content."""
    ERRORS.labels(service, kind).inc()
    LAST_ERROR.labels(service, kind).set(time.time())


def stage_done(
    service: str, stage: str, taken: int, counts: dict[str, int], seconds: float
) -> None:
    """Count one batch of a stage: `taken` records in, `counts` (kind -> n) out."""
    EVENTS_IN.labels(service, stage).inc(taken)
    for kind, n in counts.items():
        if isinstance(n, int) and n:
            EVENTS_OUT.labels(service, stage, kind).inc(n)
    BATCH_SECONDS.labels(service, stage).observe(seconds)


def count_requests(service: str) -> Any:
    """An aiohttp middleware counting every answer by route template (never the raw
    path, which may name a subject or carry an id) and status."""
    from aiohttp import web

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            REQUESTS.labels(service, route, str(exc.status)).inc()
            raise
        REQUESTS.labels(service, route, str(response.status)).inc()
        return response

    return middleware


Check = Callable[[], None]  # raises when the dependency did not answer


@dataclass
class Health:
    """Liveness and readiness of one service, as the endpoints report them."""

    service: str
    checks: dict[str, Check] = field(default_factory=dict)
    stall_after_s: float = 120.0
    cache_s: float = 5.0
    _beaten: float | None = None
    _ready: tuple[float, dict[str, str]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def beat(self) -> None:
        """Called from the service's event loop; a loop that stops beating is not live."""
        self._beaten = time.time()
        HEARTBEAT.labels(self.service).set(self._beaten)

    def live(self) -> tuple[bool, dict[str, Any]]:
        if self._beaten is None:
            return True, {"status": "ok"}
        age = time.time() - self._beaten
        ok = age <= self.stall_after_s
        return ok, {"status": "ok" if ok else "stalled", "last_beat_s": round(age, 1)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            now = time.monotonic()
            if self._ready is None or now - self._ready[0] > self.cache_s:
                failures: dict[str, str] = {}
                for name, check in self.checks.items():
                    try:
                        check()
                    except Exception as exc:  # any failure means not ready; say which
                        failures[name] = type(exc).__name__
                self._ready = (now, failures)
            failures = self._ready[1]
        UP.labels(self.service).set(0 if failures else 1)
        body: dict[str, Any] = {
            "status": "ready" if not failures else "not_ready",
            "checks": {name: failures.get(name, "ok") for name in self.checks},
        }
        return not failures, body


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                return
            if path in ("/healthz", "/readyz"):
                ok, body = health.live() if path == "/healthz" else health.ready()
                self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
                return
            self._send(404, b'{"error": "not_found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # scrapes are not worth a log line
            return

    return Handler


def serve(health: Health, host: str, port: int, tries: int = 1) -> ThreadingHTTPServer | None:
    """Serve /metrics, /healthz and /readyz for `health`'s service on host:port, in a
    daemon thread.

    With `tries` > 1 the next ports are tried when one is in use (several workers on one
    host take port, port+1, ...). Returns the server, or None when the port is 0 or every
    port tried is in use (logged; the service carries on without metrics)."""
    if port == 0:
        return None
    server = None
    for candidate in range(port, port + max(1, tries)):
        try:
            server = ThreadingHTTPServer((host, candidate), _handler(health))
            break
        except OSError as exc:
            log.warning(
                "metrics_port_in_use",
                service=health.service,
                host=host,
                port=candidate,
                error=exc.strerror,
            )
    if server is None:
        return None
    server.daemon_threads = True
    name = f"{health.service}-metrics"
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    bound = server.server_address[1]
    log.info("metrics_listening", service=health.service, address=f"http://{host}:{bound}/metrics")
    return server


def kafka_check(settings: Any, principal: str) -> Check:
    """A readiness check: the brokers answer a metadata request as `principal`."""
    from accord.core.kafka import as_principal, confluent_admin, connection

    state: dict[str, Any] = {}

    def check() -> None:
        if "admin" not in state:
            state["admin"] = confluent_admin(connection(as_principal(settings, principal)))
        state["admin"].list_topics(timeout=3)

    return check


def opa_check(settings: Any) -> Check:
    """A readiness check: OPA answers its health endpoint (with the hub's token)."""
    from accord.core.policy import opa_session

    session = opa_session(settings)

    def check() -> None:
        response = session.get(f"{settings.opa_url}/health", timeout=3)
        response.raise_for_status()

    return check


def standard_checks(settings: Any, principal: str, opa: bool = True) -> dict[str, Check]:
    """Kafka (as `principal`) and, unless `opa` is False, OPA."""
    checks = {"kafka": kafka_check(settings, principal)}
    if opa:
        checks["opa"] = opa_check(settings)
    return checks


def scrape(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of a /metrics page by name: [(labels, value)]. Used by `accord status`."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples
