"""The console's sign-in through an OpenID Connect provider (Entra ID in production).

No real provider is reachable from here, so these tests run the console's real code (its
FastAPI application, Authlib's OAuth 2 client, joserfc's checks) against a small
in-process stub provider: a Starlette app serving `.well-known/openid-configuration`, a
JWKS with an RSA key generated per test, `/authorize` redirecting back with a code and
`/token` returning an ID token signed with that key (it checks the client secret, the
redirect URI and the PKCE verifier against the S256 challenge). httpx2 reaches it through
a transport of its own, so nothing leaves the process. A test for a real tenant is not
here: see docs/operators.md ("Signing in with Entra ID") for checking one by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from accord.console.app import create_app
from accord.console.oidc import (
    FLOW_COOKIE,
    OidcConfigError,
    OidcProvider,
    RoleMap,
    parse_role_map,
)
from accord.console.users import UserStore
from accord.core.settings import Settings

ISSUER = "https://login.example.test/tenant-1/v2.0"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cret-value-from-a-file"
REDIRECT = "http://testserver/sign-in/oidc/callback"
EDINBURGH = "city-of-edinburgh"
IG_GROUP = "9a7c0f3e-0000-4000-8000-00000000ab01"


class StubProvider:
    """A minimal OpenID Connect provider. `tamper` changes the next ID token's claims or
    header; `sign_key` signs with another key (a forged token)."""

    def __init__(self, base: str = "https://login.example.test", redirect: str = "") -> None:
        self.base, self.issuer = base, f"{base}/tenant-1/v2.0"
        self.redirect = redirect or REDIRECT
        self.key = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"})
        self.sign_key: RSAKey | None = None
        self.claims: dict[str, Any] = {
            "sub": "sub-alice",
            "preferred_username": "Alice.Smith@edinburgh.example.test",
            "name": "Alice Smith",
            "roles": ["Accord.Coordinator.Edinburgh"],
        }
        self.tamper: dict[str, Any] = {}
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests: list[dict[str, str]] = []
        self.app = Starlette(
            routes=[
                Route("/tenant-1/v2.0/.well-known/openid-configuration", self.discovery),
                Route("/tenant-1/v2.0/keys", self.jwks),
                Route("/tenant-1/oauth2/v2.0/authorize", self.authorize),
                Route("/tenant-1/oauth2/v2.0/token", self.token, methods=["POST"]),
            ]
        )
        self.client = TestClient(self.app, base_url=base)

    async def discovery(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.base}/tenant-1/oauth2/v2.0/authorize",
                "token_endpoint": f"{self.base}/tenant-1/oauth2/v2.0/token",
                "jwks_uri": f"{self.base}/tenant-1/v2.0/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, request: Request) -> JSONResponse:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> RedirectResponse:
        q = request.query_params
        assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
        assert q["code_challenge_method"] == "S256" and q["redirect_uri"] == self.redirect
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": q["nonce"],
            "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
        }
        return RedirectResponse(f"{q['redirect_uri']}?code={code}&state={q['state']}", 302)

    async def token(self, request: Request) -> JSONResponse:
        form = dict(await request.form())
        self.token_requests.append(form)
        auth = request.headers.get("authorization", "")
        sent = base64.b64decode(auth.removeprefix("Basic ")).decode() if auth else ""
        if sent != f"{CLIENT_ID}:{SECRET}":
            return JSONResponse({"error": "invalid_client"}, 401)
        grant = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if (
            grant is None
            or grant["challenge"] != challenge
            or form.get("redirect_uri") != grant["redirect_uri"]
        ):
            return JSONResponse({"error": "invalid_grant"}, 400)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "nonce": grant["nonce"],
            **self.claims,
            **self.tamper,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.sign_key or self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "key-1"}, claims, key)
        return JSONResponse(
            {"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "id_token": id_token}
        )

    def transport(self) -> httpx2.MockTransport:
        def handle(request: httpx2.Request) -> httpx2.Response:
            answer = self.client.request(
                request.method,
                str(request.url),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                content=request.content,
                follow_redirects=False,
            )
            return httpx2.Response(
                answer.status_code, headers=answer.headers, content=answer.content
            )

        return httpx2.MockTransport(handle)


ROLE_MAP = {
    "mappings": [
        {"value": "Accord.Coordinator.Edinburgh", "role": "coordinator", "org": EDINBURGH},
        {"value": IG_GROUP, "role": "ig"},
        {"value": "Accord.Coordinator.Fife", "role": "coordinator", "org": "fife"},
    ]
}


def settings_for(tmp_path, **extra) -> Settings:
    secret = tmp_path / "oidc-secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    roles = tmp_path / "oidc-roles.json"
    roles.write_text(json.dumps(ROLE_MAP))
    values = {
        "state_dir": tmp_path,
        "console_tls": False,
        "console_oidc_issuer": ISSUER,
        "console_oidc_client_id": CLIENT_ID,
        "console_oidc_client_secret_file": secret,
        "console_oidc_redirect_url": REDIRECT,
        "console_oidc_roles_file": roles,
    }
    return Settings(**{**values, **extra})


@pytest.fixture
def stub():
    return StubProvider()


@pytest.fixture
def console(tmp_path, stub):
    settings = settings_for(tmp_path)
    provider = OidcProvider.from_settings(settings, transport=stub.transport())
    app = create_app(settings, users=UserStore(settings.console_users_path), oidc=provider)
    return app, TestClient(app)


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def to_provider(client: TestClient) -> str:
    """Signs in page -> the button -> the provider's authorization URL."""
    page = client.get("/sign-in")
    assert "Sign in with Microsoft Entra ID" in page.text
    started = client.post(
        "/sign-in/oidc", data={"csrf_token": csrf(page.text)}, follow_redirects=False
    )
    assert started.status_code == 303
    return started.headers["location"]


def back_from_provider(stub: StubProvider, authorize_url: str) -> str:
    answer = stub.client.get(authorize_url, follow_redirects=False)
    assert answer.status_code == 302
    callback = urlsplit(answer.headers["location"])
    return f"{callback.path}?{callback.query}"


def sign_in(client: TestClient, stub: StubProvider) -> Any:
    return client.get(back_from_provider(stub, to_provider(client)), follow_redirects=False)


def signed_in_user(app, client: TestClient):
    session, _ = app.state.sessions.get(client.cookies.get("accord_session"))
    return session.user if session else None


def assert_refused(app, client, answer, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert signed_in_user(app, client) is None
    assert client.get("/", follow_redirects=False).headers["location"] == "/sign-in"


def test_sign_in_maps_an_app_role_to_a_coordinator_of_one_council(console, stub):
    app, client = console
    authorize = to_provider(client)
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
    assert query["scope"] == ["openid profile"]
    answer = client.get(back_from_provider(stub, authorize), follow_redirects=False)
    assert answer.status_code == 200 and "You are signed in" in answer.text
    assert 'http-equiv="refresh"' in answer.text
    user = signed_in_user(app, client)
    assert (user.role, user.org, user.source) == ("coordinator", EDINBURGH, "oidc")
    assert user.username == "alice.smith@edinburgh.example.test"
    # The verifier went to the token endpoint (the stub checked it against the challenge).
    assert stub.token_requests[-1]["code_verifier"]
    assert client.get("/", follow_redirects=False).headers["location"] != "/sign-in"
    # The flow's cookie is used once: the same callback again is refused.
    assert FLOW_COOKIE not in client.cookies


def test_sign_in_page_lets_its_form_lead_to_the_provider(console):
    app, client = console
    csp = client.get("/sign-in").headers["content-security-policy"]
    assert "form-action 'self' https://login.example.test;" in csp
    assert "script-src 'self';" in csp  # the rest of the policy as strict as elsewhere


def test_group_object_id_maps_to_an_ig_officer(console, stub):
    app, client = console
    stub.claims = {**stub.claims, "roles": None, "groups": ["other-group", IG_GROUP]}
    assert sign_in(client, stub).status_code == 200
    user = signed_in_user(app, client)
    assert (user.role, user.org) == ("ig", None)


def test_wrong_state_is_refused(console, stub):
    app, client = console
    callback = back_from_provider(stub, to_provider(client))
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    assert_refused(app, client, client.get(forged), 401, "could not be checked")


def test_callback_without_this_browser_flow_is_refused(console, stub):
    app, client = console
    callback = back_from_provider(stub, to_provider(client))
    other = TestClient(app)  # another browser: no flow cookie
    assert_refused(app, other, other.get(callback), 400, "started in another")
    # and a replay of a used callback
    assert client.get(callback).status_code == 200
    again = client.get(callback)
    assert again.status_code == 400


def test_wrong_nonce_is_refused(console, stub):
    app, client = console
    stub.tamper = {"nonce": "a-nonce-from-another-sign-in"}
    assert_refused(app, client, sign_in(client, stub), 401, "nonce_mismatch")


def test_wrong_audience_is_refused(console, stub):
    app, client = console
    stub.tamper = {"aud": "another-application"}
    assert_refused(app, client, sign_in(client, stub), 401, "invalid_aud")


def test_wrong_issuer_is_refused(console, stub):
    app, client = console
    stub.tamper = {"iss": "https://login.example.test/another-tenant/v2.0"}
    assert_refused(app, client, sign_in(client, stub), 401, "invalid_iss")


def test_expired_token_is_refused(console, stub):
    app, client = console
    now = int(time.time())
    stub.tamper = {"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}
    assert_refused(app, client, sign_in(client, stub), 401, "expired")


def test_bad_signature_is_refused(console, stub):
    app, client = console
    stub.sign_key = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
    assert_refused(app, client, sign_in(client, stub), 401, "bad_signature")


def test_unmapped_user_is_refused(console, stub):
    app, client = console
    stub.claims = {**stub.claims, "roles": ["Some.Other.App.Role"]}
    assert_refused(app, client, sign_in(client, stub), 403, "has not been given a role")


def test_two_different_mappings_are_refused(console, stub):
    app, client = console
    stub.claims = {**stub.claims, "roles": ["Accord.Coordinator.Edinburgh"], "groups": [IG_GROUP]}
    assert_refused(app, client, sign_in(client, stub), 403, "more than one")


def test_provider_error_is_refused(console, stub):
    app, client = console
    authorize = to_provider(client)
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    answer = client.get(f"/sign-in/oidc/callback?error=access_denied&state={state}")
    assert_refused(app, client, answer, 401, "did not sign you in")


def test_removed_mapping_signs_the_user_out(console, stub, tmp_path):
    app, client = console
    assert sign_in(client, stub).status_code == 200
    assert signed_in_user(app, client) is not None
    assert (
        not client.get("/cases", follow_redirects=False)
        .headers.get("location", "")
        .startswith("/sign-in")
    )
    roles = tmp_path / "oidc-roles.json"
    roles.write_text(json.dumps({"mappings": [{"value": IG_GROUP, "role": "ig"}]}))
    gone = client.get("/cases", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/sign-in?expired=1"
    assert signed_in_user(app, client) is None


def test_local_users_can_be_turned_off(tmp_path, stub):
    settings = settings_for(tmp_path, console_local_users=False)
    provider = OidcProvider.from_settings(settings, transport=stub.transport())
    app = create_app(settings, users=UserStore(settings.console_users_path), oidc=provider)
    client = TestClient(app)
    page = client.get("/sign-in")
    assert "Sign in with Microsoft Entra ID" in page.text and 'name="password"' not in page.text
    refused = client.post(
        "/sign-in", data={"username": "a", "password": "b", "csrf_token": csrf(page.text)}
    )
    assert refused.status_code == 403


def test_without_oidc_settings_only_local_sign_in_is_offered(tmp_path):
    settings = Settings(state_dir=tmp_path, console_tls=False)
    assert OidcProvider.from_settings(settings) is None
    app = create_app(settings, users=UserStore(settings.console_users_path))
    page = TestClient(app).get("/sign-in")
    assert "Sign in with Microsoft" not in page.text and 'name="password"' in page.text


def test_half_configured_or_unsafe_settings_are_refused_at_start(tmp_path):
    with pytest.raises(OidcConfigError, match="CLIENT_SECRET_FILE"):
        OidcProvider.from_settings(
            Settings(state_dir=tmp_path, console_oidc_issuer=ISSUER, console_oidc_client_id="x")
        )
    settings = settings_for(tmp_path)
    settings.console_oidc_client_secret_file.chmod(0o644)
    with pytest.raises(OidcConfigError, match="readable by others"):
        OidcProvider.from_settings(settings)
    settings = settings_for(tmp_path, console_oidc_redirect_url="https://console/elsewhere")
    with pytest.raises(OidcConfigError, match="must end in"):
        OidcProvider.from_settings(settings)


def test_role_map_is_checked(tmp_path):
    with pytest.raises(OidcConfigError, match="needs the org"):
        parse_role_map({"mappings": [{"value": "r", "role": "coordinator"}]})
    with pytest.raises(OidcConfigError, match="role must be"):
        parse_role_map({"mappings": [{"value": "r", "role": "superuser"}]})
    with pytest.raises(OidcConfigError, match="only coordinators"):
        parse_role_map({"mappings": [{"value": "r", "role": "ig", "org": "fife"}]})
    path = tmp_path / "roles.json"
    assert RoleMap(path).resolve(["anything"]) is None  # a missing file maps nobody
    path.write_text(json.dumps(ROLE_MAP))
    assert RoleMap(path).resolve([IG_GROUP]).role == "ig"
