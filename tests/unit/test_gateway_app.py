"""The gateway without Kafka: tokens, authentication, request shapes, limits, OpenAPI.

What needs the broker (acceptance, 503, one partner never reaching another's topic) is in
tests/integration/test_gateway_http.py.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from accord.core.settings import Settings
from accord.gateway.app import MAX_BODY_BYTES, MAX_RECORDS, create_app, openapi_document
from accord.gateway.tokens import TOKENS_FILE_ENV, TokenError, TokenStore, tokens_file
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
    assert set(entry) == {"org", "salt", "hash", "issued_at"}


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


def with_client(store: TokenStore, body: Callable[[TestClient], Awaitable[Any]]) -> Any:
    """Run `body` against the app. Kafka is pointed at a closed port: these requests must
    be answered without it."""
    settings = Settings(
        bootstrap_servers="127.0.0.1:9",
        schema_registry_url="http://127.0.0.1:9",
        principal="accord-gateway",
        secret="not-a-real-secret",
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
    assert (health_status, health) == (200, {"status": "ok"})
    assert spec_status == 200 and spec == json.loads(json.dumps(openapi_document()))


def test_openapi_document_describes_the_endpoint_and_every_dataset() -> None:
    spec = openapi_document()
    assert spec["openapi"].startswith("3.")
    post_op = spec["paths"]["/v1/datasets/{dataset}/records"]["post"]
    assert set(post_op["responses"]) == {"200", "400", "401", "404", "413", "503"}
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
