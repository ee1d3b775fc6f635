"""`accord gateway` as its own process against the real Kafka and registry.

Tokens are issued with `accord gateway token --as <org>`; records are POSTed over HTTP;
what the response calls accepted is then found in the partner topic, what it calls
rejected in quarantine; and a partner's token never reaches another partner's topic.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from accord.core.kafka import read_topic
from accord.core.settings import Settings, get_settings
from accord.core.topics import Topics
from accord.stack import processes

from .conftest import decoded

pytestmark = pytest.mark.integration

EDINBURGH, FIFE = "city-of-edinburgh", "fife"
CA = str(get_settings().trusted_ca)  # the gateway serves the stack's certificate
# verify= given on each call, so REQUESTS_CA_BUNDLE in the environment cannot override it
https_get = functools.partial(requests.get, verify=CA)
https_post = functools.partial(requests.post, verify=CA)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gateway_env(settings: Settings, tokens: Path) -> dict[str, str]:
    return {**processes.worker_env(settings), "ACCORD_GATEWAY_TOKENS_FILE": str(tokens)}


def issue(settings: Settings, tokens: Path, org: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "accord", "gateway", "token", "--as", org],
        env=gateway_env(settings, tokens),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = result.stdout.strip()
    assert token.startswith("acc_") and token not in tokens.read_text()
    return token


@pytest.fixture
def gateway(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, tokens file) of a gateway process on a free port; stopped after."""
    tokens = tmp_path / "tokens.json"
    port = free_port()
    log = open(tmp_path / "gateway.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "accord", "gateway", "--port", str(port)],
        env=gateway_env(settings, tokens),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if https_get(f"{url}/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        process.kill()
        raise AssertionError("the gateway did not answer /health in 30s")
    try:
        yield url, tokens
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        text = (tmp_path / "gateway.log").read_text(errors="replace")
        print(f"--- gateway log (tail)\n{text[-3000:]}", file=sys.stderr)


def outcome(request_id: str, **overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "occurred_at": "2020-04-02T10:00:00Z",
        "request_id": request_id,
        "outcome": "delivered",
    }
    record.update(overrides)
    return record


def post(url: str, token: str, dataset: str, body: object) -> requests.Response:
    return https_post(
        f"{url}/v1/datasets/{dataset}/records",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def test_accepted_records_are_in_the_topic_and_rejected_ones_in_quarantine(
    settings: Settings, serde, gateway: tuple[str, Path]
) -> None:
    url, tokens = gateway
    token = issue(settings, tokens, EDINBURGH)
    batch = [
        {
            "request_id": "EDI-7",
            "occurred_at": "2020-04-01 10:15",
            "chi_number": "1403521239",
            "postcode": "eh9 1hb",
            "needs": ["food", "welfare check"],
            "urgency": "immediate",
            "channel": "helpline",
        },
        {
            "request_id": "EDI-8",
            "occurred_at": "2020-04-01T10:15:00Z",
            "chi_number": "1403521230",
            "needs": "food",
            "urgency": "soon",
            "channel": "helpline",
        },  # fmt: skip
        "not an object",
        {
            "request_id": "EDI-9",
            "occurred_at": "2020-04-01T10:15:00Z",
            "nhs_number": "9434765919",
            "needs": "medicine",
            "urgency": "routine",
            "channel": "email",
            "event_id": "0b5f3c8e-7d1a-4f26-b1e4-5a9c2d7e6f10",
        },  # fmt: skip
    ]
    response = post(url, token, "support-request", {"records": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["source_org"], body["accepted"], body["rejected"]) == (EDINBURGH, 2, 2)
    results = body["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "accepted"]
    assert results[3]["event_id"] == "0b5f3c8e-7d1a-4f26-b1e4-5a9c2d7e6f10"
    assert {(e["field"], e["rule"]) for e in results[1]["errors"]} == {
        ("chi_number", "chi_check_digit"),
        ("urgency", "enum"),
    }
    assert "1403521230" not in response.text
    assert results[2]["errors"][0]["rule"] == "json_not_object"

    topics = Topics(settings)
    published = decoded(settings, serde, topics.partner(EDINBURGH, "support-request"))
    assert {str(record["event_id"]) for _, record in published} == {
        results[0]["event_id"],
        results[3]["event_id"],
    }
    first = next(record for _, record in published if record["request_id"] == "EDI-7")
    assert first["postcode"] == "EH9 1HB" and first["needs"] == ["FOOD", "WELFARE_CHECK"]
    assert first["source_org"] == EDINBURGH
    quarantined = [record for _, record in decoded(settings, serde, topics.rejects(EDINBURGH))]
    assert sorted(record["location"] for record in quarantined) == [
        "HTTP batch record 1",
        "HTTP batch record 2",
    ]
    assert {record["origin"] for record in quarantined} == {"HTTP"}

    # Sending the same batch again (as after a 503) gives the same event ids.
    again = post(url, token, "support-request", batch).json()["results"]
    assert [r.get("event_id") for r in again] == [r.get("event_id") for r in results]


def test_a_token_publishes_only_under_its_own_organisation(
    settings: Settings, serde, gateway: tuple[str, Path]
) -> None:
    url, tokens = gateway
    edinburgh, fife = issue(settings, tokens, EDINBURGH), issue(settings, tokens, FIFE)
    claims_fife = post(url, edinburgh, "support-outcome", [outcome("X-1", source_org=FIFE)])
    assert claims_fife.status_code == 200
    [result] = claims_fife.json()["results"]
    assert result["status"] == "rejected"
    assert result["errors"][0]["rule"] == "source_org_mismatch"
    own = post(url, edinburgh, "support-outcome", [outcome("X-2", source_org=EDINBURGH)])
    assert own.json()["accepted"] == 1
    by_fife = post(url, fife, "support-outcome", [outcome("F-1")])
    assert by_fife.json()["source_org"] == FIFE

    topics = Topics(settings)
    edinburgh_topic = decoded(settings, serde, topics.partner(EDINBURGH, "support-outcome"))
    fife_topic = decoded(settings, serde, topics.partner(FIFE, "support-outcome"))
    assert [record["request_id"] for _, record in edinburgh_topic] == ["X-2"]
    assert [record["request_id"] for _, record in fife_topic] == ["F-1"]
    assert {record["source_org"] for _, record in fife_topic} == {FIFE}
    [impostor] = [record for _, record in decoded(settings, serde, topics.rejects(EDINBURGH))]
    assert impostor["source_org"] == EDINBURGH and impostor["reason_code"] == "source_org_mismatch"


def test_bad_tokens_publish_nothing(settings: Settings, gateway: tuple[str, Path]) -> None:
    url, tokens = gateway
    token = issue(settings, tokens, FIFE)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for headers in ({}, {"Authorization": f"Bearer {forged}"}, {"Authorization": token}):
        response = https_post(
            f"{url}/v1/datasets/support-outcome/records",
            json=[outcome("Z-1")],
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 401
    topic = Topics(settings).partner(FIFE, "support-outcome")
    assert list(read_topic(settings, topic, idle_timeout_s=0.5)) == []


def test_openapi_is_served(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    spec = https_get(f"{url}/openapi.json", timeout=10).json()
    assert "/v1/datasets/{dataset}/records" in spec["paths"]


def test_503_when_kafka_is_unreachable(settings: Settings, tmp_path: Path) -> None:
    """A gateway whose Kafka does not answer accepts nothing and says so at once."""
    tokens = tmp_path / "tokens.json"
    dead = settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    token = issue(dead, tokens, FIFE)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "accord", "gateway", "--port", str(port)],
        env=gateway_env(dead, tokens),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"https://127.0.0.1:{port}"
        for _ in range(100):
            try:
                https_get(f"{url}/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        started = time.monotonic()
        response = post(url, token, "support-outcome", [outcome("D-1")])
        assert response.status_code == 503 and response.json()["error"] == "unavailable"
        assert time.monotonic() - started < 20
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_a_revoked_token_is_refused_at_once_and_failures_are_counted(
    settings: Settings, gateway: tuple[str, Path]
) -> None:
    url, tokens = gateway
    token = issue(settings, tokens, FIFE)
    assert post(url, token, "support-outcome", [outcome("R-1")]).json()["accepted"] == 1
    revoked = subprocess.run(
        [sys.executable, "-m", "accord", "gateway", "revoke", "--as", FIFE],
        env=gateway_env(settings, tokens),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "revoked 1 token(s)" in revoked.stdout
    refused = post(url, token, "support-outcome", [outcome("R-2")])
    assert refused.status_code == 401
    health = https_get(f"{url}/health", timeout=10).json()
    assert health["auth_failures"] >= 1 and health["auth_failures_by_reason"]["unknown"] >= 1
    listing = subprocess.run(
        [sys.executable, "-m", "accord", "gateway", "tokens"],
        env=gateway_env(settings, tokens),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert FIFE not in listing.stdout and token.split("_", 2)[2] not in listing.stdout


def test_plain_http_is_not_served(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    with pytest.raises(requests.ConnectionError):
        requests.get(url.replace("https://", "http://") + "/health", timeout=5)
