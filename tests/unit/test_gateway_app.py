"""The gateway without Kafka: tokens, authentication, request shapes, limits, OpenAPI.

What needs the broker (acceptance, 503, one partner never reaching another's topic) is in
tests/integration/test_gateway_http.py.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from accord.core.settings import Settings
from accord.gateway import app as gateway_app
from accord.gateway.app import MAX_BODY_BYTES, MAX_RECORDS, create_app, openapi_document
from accord.gateway.limits import RateLimiter, nesting_depth, retry_after
from accord.gateway.tokens import (
    TOKENS_FILE_ENV,
    TokenError,
    TokenStore,
    issue_token,
    list_tokens,
    revoke_tokens,
    rotate_token,
    tokens_file,
)
from accord.ingest.datasets import DATASETS


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.json")


# --- tokens ---------------------------------------------------------------------------


def test_issued_token_names_its_org_and_only_a_hash_is_stored(store: TokenStore) -> None:
    token = store.issue("city-of-edinburgh")
    assert store.org_for(token) == "city-of-edinburgh"
    text = store.path.read_text()
    secret = token.split("_", 2)[2]
    assert secret not in text and token not in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    [entry] = json.loads(text)["tokens"].values()
    assert set(entry) == {"org", "salt", "hash", "issued_at", "expires_at"}


def test_each_partner_has_its_own_token(store: TokenStore) -> None:
    edinburgh, fife = store.issue("city-of-edinburgh"), store.issue("fife")
    assert edinburgh != fife
    assert (store.org_for(edinburgh), store.org_for(fife)) == ("city-of-edinburgh", "fife")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "acc_000000000000_" + t.split("_", 2)[2],  # unknown id
        lambda t: t.replace("acc_", "xyz_", 1),
        lambda t: "",
        lambda t: "acc_",
        lambda t: t.split("_", 2)[2],
    ],
)
def test_bad_tokens_name_no_org(store: TokenStore, mangle: Callable[[str], str]) -> None:
    token = store.issue("fife")
    assert store.org_for(mangle(token)) is None


def test_tokens_issued_later_are_seen_without_a_restart(store: TokenStore) -> None:
    assert store.org_for("acc_x_y") is None  # loads the (missing) file
    other = TokenStore(store.path)  # e.g. `accord gateway token` in another process
    token = other.issue("angus")
    assert store.org_for(token) == "angus"


def test_only_org_ids_get_tokens(store: TokenStore) -> None:
    with pytest.raises(TokenError):
        store.issue("City of Edinburgh")


def test_tokens_file_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    monkeypatch.delenv(TOKENS_FILE_ENV, raising=False)
    assert tokens_file(settings) == tmp_path / "state" / "gateway-tokens.json"
    monkeypatch.setenv(TOKENS_FILE_ENV, str(tmp_path / "elsewhere.json"))
    assert tokens_file(settings) == tmp_path / "elsewhere.json"


# --- requests refused before anything reaches Kafka -------------------------------------


def with_client(
    store: TokenStore, body: Callable[[TestClient], Awaitable[Any]], **overrides: Any
) -> Any:
    """Run `body` against the app. Kafka is pointed at a closed port: these requests must
    be answered without it."""
    settings = Settings(
        bootstrap_servers="127.0.0.1:9",
        schema_registry_url="https://127.0.0.1:9",
        opa_url="http://127.0.0.1:9",  # no OPA: authority unknown, the worker decides
        principal="accord-gateway",
        secret="not-a-real-secret",
        **overrides,
    )

    async def go() -> Any:
        async with TestClient(TestServer(create_app(settings, store))) as client:
            return await body(client)

    return asyncio.run(go())


def post(token: str | None, data: bytes | str, dataset: str = "support-outcome"):
    async def call(client: TestClient) -> tuple[int, dict, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = await client.post(f"/v1/datasets/{dataset}/records", data=data, headers=headers)
        return response.status, await response.json(), dict(response.headers)

    return call


def test_403_for_a_dataset_the_organisation_has_no_authority_to_publish(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What OPA answers for the organisation (accord.authority.datasets) is stood in
    for here; the integration tier asks the real OPA."""
    asked: list[str] = []

    def publishable(settings: Settings, org: str) -> set[str]:
        asked.append(org)
        return {"support-outcome"}

    monkeypatch.setattr("accord.gateway.app.publishable", publishable)
    token = store.issue("community-food-network")

    async def both(client: TestClient) -> list[tuple[int, dict, dict]]:
        refused = await post(token, "[]", dataset="shielding-list")(client)
        allowed = await post(token, "[]", dataset="support-outcome")(client)
        return [refused, allowed]

    (status, body, _), (allowed_status, _, _) = with_client(store, both)
    assert status == 403 and body["error"] == "no_authority"
    assert body["message"].startswith(
        "community-food-network has no authority to publish shielding-list"
    )
    assert "It may publish: support-outcome." in body["message"]
    assert allowed_status == 503  # past the authority check, to Kafka (closed here)
    assert asked == ["community-food-network"]  # remembered, not asked per request


def test_without_an_answer_from_opa_the_batch_goes_on_to_the_worker(store: TokenStore) -> None:
    token = store.issue("community-food-network")
    status, body, _ = with_client(store, post(token, "[]", dataset="shielding-list"))
    assert status == 503 and body["error"] == "unavailable"  # on to Kafka (closed here)


@pytest.mark.parametrize("token", [None, "", "acc_nope_nope", "Basic abc"])
def test_401_without_a_valid_token(store: TokenStore, token: str | None) -> None:
    status, body, headers = with_client(store, post(token, "[]"))
    assert status == 401 and body["error"] == "unauthorised"
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_401_for_a_token_with_the_wrong_scheme(store: TokenStore) -> None:
    token = store.issue("fife")

    async def call(client: TestClient) -> int:
        response = await client.post(
            "/v1/datasets/support-outcome/records",
            data="[]",
            headers={"Authorization": f"Token {token}"},
        )
        return response.status

    assert with_client(store, call) == 401


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        ("{not json", 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        ('{"rows": []}', 400, "bad_shape"),
        ('"just a string"', 400, "bad_shape"),
        (json.dumps([{}] * (MAX_RECORDS + 1)), 413, "too_many_records"),
        (b"[" + b" " * MAX_BODY_BYTES + b"]", 413, None),
    ],
)
def test_malformed_and_oversize_batches(
    store: TokenStore, data: bytes | str, status: int, error: str | None
) -> None:
    token = store.issue("fife")

    async def call(client: TestClient) -> tuple[int, str]:
        response = await client.post(
            "/v1/datasets/support-outcome/records",
            data=data,
            headers={"Authorization": f"Bearer {token}"},
        )
        return response.status, await response.text()

    got_status, text = with_client(store, call)
    assert got_status == status
    if error:
        assert json.loads(text)["error"] == error


def test_unknown_dataset_is_404(store: TokenStore) -> None:
    token = store.issue("fife")
    status, body, _ = with_client(store, post(token, "[]", dataset="weather"))
    assert status == 404 and "support-request" in body["message"]


def test_503_when_kafka_is_unreachable_and_nothing_is_accepted(store: TokenStore) -> None:
    token = store.issue("fife")
    record = {"occurred_at": "2020-04-02T10:00:00Z", "request_id": "R1", "outcome": "delivered"}
    status, body, headers = with_client(store, post(token, json.dumps([record])))
    assert status == 503 and body["error"] == "unavailable"
    assert "accepted" not in body and headers["Retry-After"] == "5"


# --- health and OpenAPI ----------------------------------------------------------------------


def test_health_and_openapi_are_served(store: TokenStore) -> None:
    async def call(client: TestClient) -> tuple[int, dict, int, dict]:
        health = await client.get("/health")
        spec = await client.get("/openapi.json")
        return health.status, await health.json(), spec.status, await spec.json()

    health_status, health, spec_status, spec = with_client(store, call)
    assert health_status == 200 and health["status"] == "ok" and health["auth_failures"] == 0
    assert spec_status == 200 and spec == json.loads(json.dumps(openapi_document()))


def test_openapi_document_describes_the_endpoint_and_every_dataset() -> None:
    spec = openapi_document()
    assert spec["openapi"].startswith("3.")
    post_op = spec["paths"]["/v1/datasets/{dataset}/records"]["post"]
    assert set(post_op["responses"]) == {"200", "400", "401", "403", "404", "413", "429", "503"}
    assert post_op["security"] == [{"bearerAuth": []}]
    assert post_op["parameters"][0]["schema"]["enum"] == sorted(DATASETS)
    schemas = spec["components"]["schemas"]
    for dataset in DATASETS.values():
        schema = schemas[dataset.record_name]
        assert set(dataset.fields) <= set(schema["properties"])
        assert schema["required"] == list(dataset.required_fields)
    assert schemas["SupportRequest"]["properties"]["needs"]["type"] == "array"
    assert schemas["Records"]["maxItems"] == MAX_RECORDS
    # Every $ref points at something that exists.
    text = json.dumps(spec)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in schemas, ref


# --- expiry, revocation, rotation, listing ------------------------------------------------


def test_an_expired_token_is_refused(store: TokenStore) -> None:
    token = store.issue("fife", timedelta(days=1))
    assert store.org_for(token) == "fife"
    tomorrow = datetime.now(UTC) + timedelta(days=1, seconds=1)
    assert store.check(token, tomorrow).reason == "expired"
    assert store.org_for(token, tomorrow) is None


def test_a_token_without_an_expiry_is_refused(store: TokenStore) -> None:
    token = store.issue("fife")
    document = json.loads(store.path.read_text())
    for entry in document["tokens"].values():
        del entry["expires_at"]
    store.path.write_text(json.dumps(document))
    assert store.check(token).reason == "expired"


def test_revocation_and_rotation_take_effect_at_once(store: TokenStore) -> None:
    first, other = store.issue("fife"), store.issue("angus")
    gateway_view = TokenStore(store.path)
    assert gateway_view.org_for(first) == "fife"
    second = store.issue("fife", replace=True)  # a rotation
    assert gateway_view.org_for(first) is None and gateway_view.org_for(second) == "fife"
    assert store.revoke("fife") == 1
    assert gateway_view.org_for(second) is None
    assert gateway_view.org_for(other) == "angus"


def test_zero_or_negative_lifetimes_are_refused(store: TokenStore) -> None:
    with pytest.raises(TokenError):
        store.issue("fife", timedelta(0))


def test_the_settings_driven_functions_list_without_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(TOKENS_FILE_ENV, raising=False)
    settings = Settings(state_dir=tmp_path / "state", gateway_token_ttl_days=7)
    token = issue_token(settings, "fife")
    rotated = rotate_token(settings, "fife", timedelta(days=1))
    issue_token(settings, "angus")
    listed = list_tokens(settings)
    assert [info.org for info in listed] == ["angus", "fife"]
    assert all(info.token_id not in (token, rotated) for info in listed)
    assert token.split("_", 2)[2] not in repr(listed) and rotated.split("_", 2)[2] not in repr(
        listed
    )
    fife = next(info for info in listed if info.org == "fife")
    lifetime = datetime.fromisoformat(fife.expires_at) - datetime.fromisoformat(fife.issued_at)
    assert lifetime == timedelta(days=1)
    angus = next(info for info in listed if info.org == "angus")
    lifetime = datetime.fromisoformat(angus.expires_at) - datetime.fromisoformat(angus.issued_at)
    assert lifetime == timedelta(days=7)
    assert revoke_tokens(settings, "fife") == 1 and revoke_tokens(settings, "fife") == 0
    assert [info.org for info in list_tokens(settings)] == ["angus"]


# --- failed sign-ins, rate limits, nesting -------------------------------------------------


class RecordingLog:
    """Stands in for the gateway's structlog logger: keeps (event, fields) of each call."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **fields: self.entries.append({"event": event, **fields})


def test_failed_sign_ins_are_counted_by_reason_and_logged_without_the_token(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = RecordingLog()
    monkeypatch.setattr(gateway_app, "log", recording)
    token = store.issue("fife")
    forged = token[:-2] + ("zz" if not token.endswith("zz") else "yy")

    async def call(client: TestClient) -> dict:
        for header in ({}, {"Authorization": f"Bearer {forged}"}, {"Authorization": "Bearer x"}):
            response = await client.post(
                "/v1/datasets/support-outcome/records", data="[]", headers=header
            )
            assert response.status == 401
        return await (await client.get("/health")).json()

    health = with_client(store, call)
    logs = recording.entries
    assert health["auth_failures"] == 3
    assert health["auth_failures_by_reason"] == {"missing": 1, "wrong_secret": 1, "malformed": 1}
    failures = [entry for entry in logs if entry["event"] == "gateway_auth_failed"]
    assert [entry["reason"] for entry in failures] == ["missing", "wrong_secret", "malformed"]
    logged = repr(logs)
    assert forged.split("_", 2)[2] not in logged and token.split("_", 2)[2] not in logged


def test_a_token_over_its_rate_gets_429_with_retry_after(store: TokenStore) -> None:
    token, other = store.issue("fife"), store.issue("angus")

    async def call(client: TestClient) -> list[tuple[int, str | None]]:
        answers = []
        for bearer in (token, token, token, other):
            response = await client.post(  # an unknown dataset: answered without Kafka
                "/v1/datasets/weather/records",
                data="[]",
                headers={"Authorization": f"Bearer {bearer}"},
            )
            answers.append((response.status, response.headers.get("Retry-After")))
        return answers

    answers = with_client(store, call, gateway_rate_per_s=0.1, gateway_rate_burst=2)
    assert answers[:2] == [(404, None), (404, None)]
    assert answers[2][0] == 429 and 1 <= int(answers[2][1]) <= 10
    assert answers[3] == (404, None)  # the limit is per token


@pytest.mark.parametrize("depth", [17, 100, 5000, 200_000])
def test_deeply_nested_json_is_400_not_500(store: TokenStore, depth: int) -> None:
    token = store.issue("fife")
    body = "[" * depth + "]" * depth
    status, answer, _ = with_client(store, post(token, body))
    assert status == 400 and answer["error"] == "too_deep"


def test_nesting_at_the_limit_passes_the_depth_check(store: TokenStore) -> None:
    token = store.issue("fife")
    body = '{"rows": ' + "[" * 15 + "]" * 15 + "}"  # 16 levels: then judged on its shape
    status, answer, _ = with_client(store, post(token, body))
    assert status == 400 and answer["error"] == "bad_shape"


def test_the_rate_limiter_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] = 0.5
    assert limiter.take("a") == 0.0 and limiter.take("a") > 0
    now[0] = 100.0
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # never above the burst
    assert limiter.take("a") > 0 and limiter.take("b") == 0.0
    assert retry_after(0.01) == "1" and retry_after(2.2) == "3"


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ([], 1), ({"a": [1, {"b": "x"}]}, 3), ([[[[]]]], 4), ({"a": {}}, 2)],
)
def test_nesting_depth(value: Any, depth: int) -> None:
    assert nesting_depth(value) == depth


def test_a_lone_surrogate_is_rejected_with_its_reason_not_a_500() -> None:
    # JSON text may escape a surrogate; json.loads gives a str no UTF-8 encoder takes.
    text = (
        '{"occurred_at": "2020-04-02T10:00:00Z", "request_id": "R\\ud800", "outcome": "delivered"}'
    )
    records = json.loads(f'[{text}, "\\udfff"]')
    first, second = gateway_app._outcomes(None, "fife", "support-outcome", records)
    assert first.code == "encoding" and first.field == "request_id"
    assert b"\\ud800" in first.quarantine["original"]
    assert second.code == "json_not_object" and second.quarantine["original"] == b'"\\udfff"'
