"""Unit tests for the metrics every service exports, their endpoints, `accord status`'s
summary, the Grafana dashboard built on them (deploy/grafana/accord.json) and the
Prometheus alerting rules (deploy/prometheus/accord-alerts.yaml)."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from accord.core import metrics
from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.pipeline.decision import recipient_of
from accord.stack.status import lag_of, last_error, summarise

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "accord.json"
ALERTS = ROOT / "deploy" / "prometheus" / "accord-alerts.yaml"
CHART_VALUES = ROOT / "deploy" / "k8s" / "accord" / "values.yaml"

# Label names a metric may carry: ids of stages, organisations, agreements, reasons and
# partitions. A person key, a name or a record's content must never become a label.
ALLOWED_LABELS = {
    "service",
    "stage",
    "kind",
    "group",
    "topic",
    "partition",
    "outcome",
    "agreement",
    "package",
    "rule",
    "reason",
    "recipient",
    "route",
    "status",
    "le",
}

PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "increase",
    "irate",
    "histogram_quantile",
    "time",
    "by",
    "without",
    "on",
    "ignoring",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
}


def exercise_every_metric() -> None:
    """Give each labelled metric one series, as the services do when they work."""
    metrics.stage_done("worker", "join_cases", 3, {"allowed": 2, "denied": 1}, 0.1)
    metrics.CONSUMER_LAG.labels("worker", "accord-worker", "t", "0").set(4)
    metrics.DECISIONS.labels("ALLOW", "ag-1").inc()
    metrics.OPA_QUERY_SECONDS.labels("accord.sharing", "answer").observe(0.01)
    metrics.OPA_ERRORS.labels("accord.sharing", "unavailable").inc()
    metrics.QUARANTINED.labels("worker", "schema_invalid").inc()
    metrics.SHARE_RECORDS.labels("org-a", "share").inc()
    metrics.error("worker", "batch_failed")
    metrics.REQUESTS.labels("gateway", "/health", "200").inc()
    metrics.AUTH_FAILURES.labels("gateway", "expired").inc()
    metrics.UP.labels("worker").set(1)
    metrics.HEARTBEAT.labels("worker").set(time.time())


def scraped_names() -> set[str]:
    exercise_every_metric()
    return set(metrics.scrape(generate_latest(REGISTRY).decode()))


def expression_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords,
    label names (inside {} or by/without lists) or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable.get("type") == "query":  # label_values(<selector>, <label name>)
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", variable["query"]))
    return exprs


def test_every_declared_name_is_exported() -> None:
    missing = metrics.EXPORTED - scraped_names() - {"up"}
    assert not missing


def test_dashboard_uses_only_exported_names() -> None:
    exported = scraped_names() | {"up"}  # `up` is Prometheus's own series per target
    exprs = dashboard_expressions()
    assert len(exprs) >= 15
    used = set()
    for expr in exprs:
        names = expression_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} names {sorted(names - exported)}"
        used |= names
    # Each part of the issue has a panel: lag, decisions, OPA latency, quarantine, shares.
    for needed in (
        "accord_consumer_lag",
        "accord_decisions_total",
        "accord_opa_query_seconds_bucket",
        "accord_quarantined_total",
        "accord_share_records_total",
        "accord_events_in_total",
        "process_resident_memory_bytes",
    ):
        assert needed in used


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (topic) (rate(accord_events_in_total{job=~"x"}[5m]))', {"accord_events_in_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m])))", {"a_bucket"}),
        ("time() - accord_heartbeat_timestamp_seconds", {"accord_heartbeat_timestamp_seconds"}),
        ("label_values(accord_ready, job)", {"accord_ready", "job"}),
    ],
)
def test_expression_names(expr: str, names: set[str]) -> None:
    assert expression_metric_names(expr) == names


def test_dashboard_checker_catches_an_unknown_name() -> None:
    assert not expression_metric_names("rate(accord_nonexistent_total[5m])") <= scraped_names()


DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def rule_file_problems(doc: object) -> list[str]:
    """What keeps `doc` from being a Prometheus alerting-rule file (groups of named
    rules, each an alert with an expression, durations, string labels and annotations)."""
    if not isinstance(doc, dict) or set(doc) != {"groups"} or not isinstance(doc["groups"], list):
        return ["the file must be a mapping with one key, groups: a list"]
    problems: list[str] = []
    groups, alerts = set(), set()
    for group in doc["groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            problems.append(f"a group without a name: {group!r}")
            continue
        if group["name"] in groups:
            problems.append(f"group {group['name']} twice")
        groups.add(group["name"])
        unknown = set(group) - {"name", "interval", "limit", "rules"}
        if unknown:
            problems.append(f"group {group['name']}: unknown keys {sorted(unknown)}")
        if not isinstance(group.get("rules"), list) or not group["rules"]:
            problems.append(f"group {group['name']} has no rules")
            continue
        for rule in group["rules"]:
            name = rule.get("alert") if isinstance(rule, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                problems.append(f"group {group['name']}: a rule without a valid alert name")
                continue
            if name in alerts:
                problems.append(f"alert {name} twice")
            alerts.add(name)
            if set(rule) - RULE_KEYS:
                problems.append(f"{name}: unknown keys {sorted(set(rule) - RULE_KEYS)}")
            if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                problems.append(f"{name}: no expr")
            for key in ("for", "keep_firing_for"):
                if key in rule and not DURATION.match(str(rule[key])):
                    problems.append(f"{name}: {key} {rule[key]!r} is not a duration")
            for key in ("labels", "annotations"):
                values = rule.get(key, {})
                if not isinstance(values, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in values.items()
                ):
                    problems.append(f"{name}: {key} must map strings to strings")
    return problems


def alert_rules() -> dict[str, dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    assert rule_file_problems(doc) == []
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}


def test_alert_rules_have_the_rule_file_shape_and_name_only_exported_series() -> None:
    exported = scraped_names() | {"up"}
    rules = alert_rules()
    used: set[str] = set()
    for name, rule in rules.items():
        names = expression_metric_names(rule["expr"])
        assert names, f"{name}: no metric in {rule['expr']!r}"
        assert names <= exported, f"{name} names {sorted(names - exported)}"
        used |= names
        assert rule["labels"]["severity"] in {"page", "warning"}, name
        assert rule["annotations"]["summary"], name
    # Every row of docs/operations.md's table with a threshold has its rule.
    for needed in (
        "accord_ready",
        "up",
        "accord_consumer_lag",
        "accord_events_in_total",
        "accord_decisions_total",
        "accord_opa_query_seconds_bucket",
        "accord_opa_errors_total",
        "accord_quarantined_total",
        "accord_share_records_total",
        "accord_last_error_timestamp_seconds",
        "accord_auth_failures_total",
        "accord_http_requests_total",
        "accord_heartbeat_timestamp_seconds",
        "process_resident_memory_bytes",
    ):
        assert needed in used, needed


def test_alert_thresholds_are_the_documented_ones() -> None:
    rules = alert_rules()
    doc = (ROOT / "docs" / "operations.md").read_text()
    assert "deploy/prometheus/accord-alerts.yaml" in doc
    assert (rules["AccordNotReady"]["expr"], rules["AccordNotReady"]["for"]) == (
        "accord_ready == 0",
        "2m",
    )
    assert rules["AccordOpaSlow"]["for"] == "10m" and "0.99" in rules["AccordOpaSlow"]["expr"]
    assert "> 1" in rules["AccordOpaSlow"]["expr"]
    assert rules["AccordQuarantineHigh"]["for"] == "30m"
    assert "0.01 *" in rules["AccordQuarantineHigh"]["expr"]
    assert "0.1 *" in rules["AccordWithdrawalsHigh"]["expr"]
    assert "> 60" in rules["AccordWorkerLoopStalled"]["expr"]
    assert "* 60 > 20" in rules["AccordAuthFailures"]["expr"]


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(quantity[:-2]) * units[quantity[-2:]]


def test_memory_alerts_are_80_percent_of_the_charts_limits() -> None:
    values = yaml.safe_load(CHART_VALUES.read_text())
    checked = set()
    for name, rule in alert_rules().items():
        if "process_resident_memory_bytes" not in rule["expr"]:
            continue
        shape = r'> 0\.8 \* (\d+) and on \(instance\) accord_ready\{service="(\w+)"\}'
        found = re.search(shape, rule["expr"])
        assert found, f"{name}: {rule['expr']!r}"
        limit, service = int(found.group(1)), found.group(2)
        assert limit == memory_bytes(values[service]["resources"]["limits"]["memory"]), name
        checked.add(service)
    assert checked == {"worker", "gateway", "registry", "console"}


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"rules": []}, "one key, groups"),
        ({"groups": [{"name": "g", "rules": [{"alert": "A"}]}]}, "A: no expr"),
        ({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": "2 min"}]}]},
         "not a duration"),
        ({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "labels": {"n": 1}}]}]},
         "labels must map"),
        ({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "record": "x"}]}]},
         "unknown keys"),
        ({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up"}]},
                     {"name": "h", "rules": [{"alert": "A", "expr": "up"}]}]}, "alert A twice"),
    ],
)  # fmt: skip
def test_rule_file_checker_catches(doc: object, problem: str) -> None:
    assert any(problem in p for p in rule_file_problems(doc)), rule_file_problems(doc)


def test_labels_carry_no_personal_data() -> None:
    exercise_every_metric()
    for family in REGISTRY.collect():
        if not family.name.startswith("accord_"):
            continue
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (family.name, sample.labels)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoints_answer_on_loopback() -> None:
    calls = []

    def kafka() -> None:
        calls.append("kafka")

    def opa() -> None:
        raise ConnectionError("refused")

    health = metrics.Health("t", {"kafka": kafka, "opa": opa}, cache_s=60)
    port = free_port()
    server = metrics.serve(health, "127.0.0.1", port)
    assert server is not None
    try:
        assert server.server_address[0] == "127.0.0.1"
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "process_resident_memory_bytes" in body
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503
        assert json.loads(body)["checks"] == {"kafka": "ok", "opa": "ConnectionError"}
        get(f"http://127.0.0.1:{port}/readyz")
        assert calls == ["kafka"]  # cached: one round trip per check per cache period
        assert get(f"http://127.0.0.1:{port}/nowhere")[0] == 404
        # A second service on the same port takes the next one when allowed to.
        other = metrics.serve(metrics.Health("u"), "127.0.0.1", port, tries=3)
        assert other is not None and other.server_address[1] != port
        other.shutdown()
        assert metrics.serve(metrics.Health("v"), "127.0.0.1", port) is None
    finally:
        server.shutdown()


def test_liveness_follows_the_heartbeat() -> None:
    health = metrics.Health("t", stall_after_s=5)
    assert health.live()[0]  # a service that never beats is live while it runs
    health.beat()
    assert health.live()[0]
    health._beaten = time.time() - 10
    ok, body = health.live()
    assert not ok and body["status"] == "stalled"


def test_ready_when_every_check_answers() -> None:
    assert metrics.Health("t", {"a": lambda: None}).ready()[0]


def test_settings_bind_metrics_to_loopback_by_default() -> None:
    settings = Settings(_env_file=None)
    assert settings.metrics_host == "127.0.0.1"
    ports = {
        settings.worker_metrics_port,
        settings.gateway_metrics_port,
        settings.registry_metrics_port,
        settings.console_metrics_port,
    }
    assert len(ports) == 4 and 0 not in ports


@pytest.mark.parametrize("prefix", ["", "tenant-a."])
def test_recipient_of_a_share_topic(prefix: str) -> None:
    topics = Topics(Settings(topic_prefix=prefix))
    assert recipient_of(topics.share("org-b"), topics.share("")) == "org-b"


def test_status_summary() -> None:
    before = {
        "accord_events_in_total": [({"stage": "a"}, 100.0), ({"stage": "b"}, 50.0)],
        "accord_events_out_total": [({"stage": "a"}, 10.0)],
    }
    after = {
        "accord_events_in_total": [({"stage": "a"}, 300.0), ({"stage": "b"}, 50.0)],
        "accord_events_out_total": [({"stage": "a"}, 30.0)],
        "accord_consumer_lag": [
            ({"group": "g", "topic": "t", "partition": "0"}, 5.0),
            ({"group": "g", "topic": "t", "partition": "0"}, 7.0),  # a second worker's view
            ({"group": "g", "topic": "t", "partition": "1"}, 1.0),
        ],
        "process_resident_memory_bytes": [({}, 64 * 2**20)],
        "accord_last_error_timestamp_seconds": [
            ({"service": "worker", "kind": "batch_failed"}, 1000.0),
            ({"service": "worker", "kind": "reassess_failed"}, 1090.0),
        ],
        "accord_errors_total": [({"service": "worker", "kind": "reassess_failed"}, 2.0)],
    }
    row = summarise("worker", "http://x", "ready", before, after, 2.0, 1100.0)
    assert row.in_per_s == 100.0 and row.out_per_s == 10.0
    assert row.lag == 8 and row.memory_mb == 64
    assert row.last_error == "reassess_failed (2x, last 10s ago)"
    assert lag_of({}) is None and last_error({}, 0) == "-"
