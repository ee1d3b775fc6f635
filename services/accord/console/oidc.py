"""Console sign-in through a council's OpenID Connect provider (Entra ID, formerly Azure AD).

The authorization code flow with PKCE (S256), through Authlib's OAuth 2 client
(`authlib.integrations.httpx_client.OAuth2Client`, on httpx2); the ID token is verified with
joserfc (Authlib's JOSE library, which replaces `authlib.jose`): its RS256 signature
against the provider's JWKS (fetched again once when a key is not found: keys rotate),
its issuer, audience (and `azp` when there are several), expiry, issue time and the
nonce this browser's sign-in sent. `state` is checked against the one this browser was
given, in a short-lived cookie (`accord_oidc`, HttpOnly, SameSite=Lax so that it comes back
on the provider's redirect, 10 minutes, one use).

Who may sign in, and as what, is the role map (ACCORD_CONSOLE_OIDC_ROLES_FILE, JSON):

    {"mappings": [
      {"value": "Accord.Coordinator.EdinburghCouncil", "role": "coordinator",
       "org": "edinburgh-council"},
      {"value": "3f0c1e9a-0000-4000-8000-000000000001", "role": "ig"}
    ]}

A `value` is an app role (the ID token's `roles` claim) or a group object id (its
`groups` claim). A person whose token carries no mapped value, or values mapping to
different roles or organisations, is refused with a page that says so, and no session
starts. The map is read again when the file changes, and every request of a signed-in
person is checked against it (a removed mapping signs them out).

No personal data is logged: a refusal is logged with its reason code only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx2
from authlib.integrations.httpx_client import OAuth2Client
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from accord.console.auth import csrf_protect
from accord.console.signin import start_session
from accord.console.users import (
    ADMIN,
    COORDINATOR,
    IG,
    ROLE_NAMES,
    User,
    UserError,
    check_username,
)
from accord.console.web import error_page, render
from accord.core.errors import ConfigurationError
from accord.core.logging import get_logger
from accord.core.settings import Settings

log = get_logger("accord.console")
router = APIRouter()

CALLBACK_PATH: Final = "/sign-in/oidc/callback"
FLOW_COOKIE: Final = "accord_oidc"
FLOW_TTL_S: Final = 600.0
MAX_FLOWS: Final = 10_000
LEEWAY_S: Final = 60
ALGORITHMS: Final = ("RS256",)
HTTP_TIMEOUT_S: Final = 10.0


class OidcConfigError(ConfigurationError):
    """The OIDC settings or the role map are incomplete or wrong (raised at start-up: the
    console refuses to start, saying which)."""


class OidcRefused(Exception):
    """A sign-in through the provider that must not start a session. `reason` is a short
    code for the log (never a claim's value); `title` and `message` are for the page."""

    def __init__(self, reason: str, status: int, title: str, message: str, what_to_do: str):
        super().__init__(reason)
        self.reason, self.status = reason, status
        self.title, self.message, self.what_to_do = title, message, what_to_do


def _refused_verification(reason: str) -> OidcRefused:
    return OidcRefused(
        reason,
        401,
        "Your sign-in could not be checked",
        "The answer from your organisation's sign-in service did not pass the console's "
        "checks, so you have not been signed in.",
        "Start again from the sign-in page. If it happens again, tell your administrator "
        f"(reason: {reason}).",
    )


# --- the role map ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    role: str
    org: str | None


def parse_role_map(data: Any) -> dict[str, Mapping]:
    if not isinstance(data, dict) or not isinstance(data.get("mappings"), list):
        raise OidcConfigError('the role map must be {"mappings": [...]}')
    out: dict[str, Mapping] = {}
    for i, item in enumerate(data["mappings"]):
        where = f"mapping {i + 1}"
        if not isinstance(item, dict):
            raise OidcConfigError(f"{where} is not an object")
        value, role, org = item.get("value"), item.get("role"), item.get("org")
        if not isinstance(value, str) or not value.strip():
            raise OidcConfigError(f"{where}: value (an app role or group object id) is missing")
        if role not in (COORDINATOR, IG, ADMIN):
            raise OidcConfigError(f"{where}: role must be one of {COORDINATOR}, {IG}, {ADMIN}")
        if role == COORDINATOR and (not isinstance(org, str) or not org):
            raise OidcConfigError(f"{where}: a coordinator needs the org (recipient) they work for")
        if role != COORDINATOR and org is not None:
            raise OidcConfigError(f"{where}: only coordinators have an org")
        if value in out and out[value] != Mapping(role, org):
            raise OidcConfigError(f"{where}: {value!r} is mapped twice, differently")
        out[value.strip()] = Mapping(role, org)
    return out


class RoleMap:
    """The role map file, read again when it changes. A missing file maps nobody."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._map: dict[str, Mapping] = {}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._map = None, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            mapping = parse_role_map(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise OidcConfigError(f"the role map {self.path} cannot be read: {exc}") from None
        self._stamp, self._map = stamp, mapping

    def matches(self, values: Iterable[str]) -> set[Mapping]:
        with self._lock:
            try:
                self._load()
            except OidcConfigError as exc:
                # A broken edit maps nobody until it is fixed (never the old, wider map).
                log.error("console_oidc_role_map_invalid", error=str(exc))
                self._stamp, self._map = None, {}
            return {self._map[v] for v in values if v in self._map}

    def resolve(self, values: Iterable[str]) -> Mapping | None:
        found = self.matches(values)
        return next(iter(found)) if len(found) == 1 else None

    def __len__(self) -> int:
        return len(self._map)


# --- the provider ---------------------------------------------------------------------------


@dataclass
class PendingFlow:
    state: str
    nonce: str
    verifier: str
    created: float


class OidcProvider:
    """One OpenID Connect provider: discovery, the authorization URL, the code exchange
    and the ID token's checks. `transport` is httpx2's (tests route it to a stub)."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_url: str,
        name: str,
        scopes: str,
        role_map: RoleMap,
        transport: httpx2.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer, self.client_id, self.redirect_url = issuer, client_id, redirect_url
        self._secret = client_secret
        self.name, self.scopes, self.role_map = name, scopes, role_map
        self.transport, self.clock = transport, clock
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._flows: OrderedDict[str, PendingFlow] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: httpx2.BaseTransport | None = None
    ) -> OidcProvider | None:
        """The provider the settings describe; None when OIDC is not configured at all;
        OidcConfigError when it is configured by halves or wrongly."""
        named = {
            "ACCORD_CONSOLE_OIDC_ISSUER": settings.console_oidc_issuer,
            "ACCORD_CONSOLE_OIDC_CLIENT_ID": settings.console_oidc_client_id,
            "ACCORD_CONSOLE_OIDC_CLIENT_SECRET_FILE": settings.console_oidc_client_secret_file,
            "ACCORD_CONSOLE_OIDC_REDIRECT_URL": settings.console_oidc_redirect_url,
        }
        missing = [k for k, v in named.items() if not v]
        if len(missing) == len(named):
            return None
        if missing:
            raise OidcConfigError(f"OpenID Connect sign-in also needs {', '.join(missing)}")
        issuer = str(settings.console_oidc_issuer).rstrip("/")
        if urlsplit(issuer).scheme != "https" and not _loopback(issuer):
            raise OidcConfigError("ACCORD_CONSOLE_OIDC_ISSUER must be an https:// address")
        redirect = str(settings.console_oidc_redirect_url)
        if urlsplit(redirect).path != CALLBACK_PATH:
            raise OidcConfigError(
                f"ACCORD_CONSOLE_OIDC_REDIRECT_URL must end in {CALLBACK_PATH} "
                "(the console's address followed by that path)"
            )
        secret_file = Path(str(settings.console_oidc_client_secret_file))
        try:
            mode = secret_file.stat().st_mode
            secret = secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise OidcConfigError(f"the client secret file cannot be read: {exc}") from None
        if mode & 0o077:
            raise OidcConfigError(
                f"the client secret file {secret_file} is readable by others; chmod 600 it"
            )
        if not secret:
            raise OidcConfigError(f"the client secret file {secret_file} is empty")
        return cls(
            issuer=issuer,
            client_id=str(settings.console_oidc_client_id),
            client_secret=secret,
            redirect_url=redirect,
            name=settings.console_oidc_provider_name,
            scopes=settings.console_oidc_scopes,
            role_map=RoleMap(settings.console_oidc_roles_path),
            transport=transport,
        )

    # HTTP to the provider

    def _client(self) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.client_id,
            client_secret=self._secret,
            scope=self.scopes,
            redirect_uri=self.redirect_url,
            code_challenge_method="S256",
            transport=self.transport,
            timeout=HTTP_TIMEOUT_S,
        )

    def _get_json(self, url: str) -> dict[str, Any]:
        with self._client() as client:
            response = client.request("GET", url, withhold_token=True)
            response.raise_for_status()
            body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return body

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            meta = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if meta.get("issuer") != self.issuer:
                raise ValueError("the discovery document names another issuer")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(meta.get(key), str):
                    raise ValueError(f"the discovery document has no {key}")
            self._metadata = meta
        return self._metadata

    def keys(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            self._keys = KeySet.import_key_set(self._get_json(self.metadata()["jwks_uri"]))
        return self._keys

    def form_origins(self) -> list[str]:
        """Where the sign-in page's form may lead (CSP form-action also covers the redirect
        that follows a form): the issuer's origin and the authorization endpoint's."""
        urls = [self.issuer]
        try:
            urls.append(self.metadata()["authorization_endpoint"])
        except (httpx2.HTTPError, ValueError):
            pass  # the issuer's origin only; the button's own page says when it is down
        origins = []
        for url in urls:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins and all(c not in origin for c in " ;,'\""):
                origins.append(origin)
        return origins

    # the flow

    def begin(self) -> tuple[str, str]:
        """(the provider's authorization URL, the flow's cookie value)."""
        flow = PendingFlow(
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(48),
            self.clock(),
        )
        with self._client() as client:
            url, _ = client.create_authorization_url(
                self.metadata()["authorization_endpoint"],
                state=flow.state,
                code_verifier=flow.verifier,
                nonce=flow.nonce,
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._flows[token] = flow
            while len(self._flows) > MAX_FLOWS:
                self._flows.popitem(last=False)
        return url, token

    def take_flow(self, token: str | None) -> PendingFlow | None:
        """The pending flow of this cookie, used once; None when unknown or too old."""
        with self._lock:
            flow = self._flows.pop(token or "", None)
        if flow is None or self.clock() - flow.created > FLOW_TTL_S:
            return None
        return flow

    def finish(self, flow: PendingFlow, state: str, code: str) -> dict[str, Any]:
        """The verified ID token's claims, or OidcRefused."""
        if not hmac.compare_digest(state.encode(), flow.state.encode()):
            raise _refused_verification("state_mismatch")
        try:
            with self._client() as client:
                token = client.fetch_token(
                    self.metadata()["token_endpoint"],
                    code=code,
                    code_verifier=flow.verifier,
                )
        except Exception as exc:  # the provider's OAuth error, a network error, bad JSON
            log.warning("console_oidc_token_failed", error=type(exc).__name__)
            raise OidcRefused(
                "token_exchange_failed",
                502,
                "Your organisation's sign-in service did not answer as expected",
                "The console could not complete your sign-in with "
                f"{self.name}. You have not been signed in.",
                "Try again in a few minutes; if it goes on, tell your administrator.",
            ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise _refused_verification("no_id_token")
        return self.verify(id_token, flow.nonce)

    def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            try:
                decoded = jwt.decode(id_token, self.keys(), algorithms=list(ALGORITHMS))
            except JoseError:
                # A key the provider rotated in since the JWKS was read: read it again, once.
                decoded = jwt.decode(id_token, self.keys(refresh=True), algorithms=list(ALGORITHMS))
        except (JoseError, ValueError) as exc:
            raise _refused_verification(f"bad_signature:{type(exc).__name__}") from None
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=int(self.clock()),
            leeway=LEEWAY_S,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            claim = getattr(exc, "claim", "claims")
            if claim == "exp":
                raise _refused_verification("expired") from None
            raise _refused_verification(f"invalid_{claim}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise _refused_verification("invalid_azp")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise _refused_verification("nonce_mismatch")
        return claims

    def user_for(self, claims: dict[str, Any]) -> User:
        """The console user these verified claims map to, or OidcRefused."""
        values = tuple(
            str(v)
            for name in ("roles", "groups")
            if isinstance(claims.get(name), list)
            for v in claims[name]
        )
        found = self.role_map.matches(values)
        if len(found) != 1:
            overage = "groups" in (claims.get("_claim_names") or {})
            log.warning(
                "console_oidc_unmapped",
                reason="ambiguous" if found else "unmapped",
                values=len(values),
                group_overage=overage,
            )
            if found:
                message = (
                    "Your account is given more than one console role or organisation, so "
                    "the console cannot tell which you should have."
                )
            else:
                message = (
                    f"You signed in with {self.name}, but your account has not been given a "
                    "role in this console."
                )
                if overage:
                    message += " (Your account is in too many groups for them to be sent.)"
            raise OidcRefused(
                "ambiguous" if found else "unmapped",
                403,
                "Your account has no access to this console",
                message + " You have not been signed in.",
                "Ask your administrator to assign you one role (an app role or group) for "
                "the console.",
            )
        mapping = next(iter(found))
        return User(
            username=username_for(claims),
            role=mapping.role,
            org=mapping.org,
            display_name=claims.get("name") if isinstance(claims.get("name"), str) else None,
            source="oidc",
            idp_values=values,
        )


def username_for(claims: dict[str, Any]) -> str:
    """The provider's user name (Entra ID's preferred_username) when it fits the console's
    user names; otherwise a stable pseudonym of the issuer and subject."""
    for name in ("preferred_username", "email"):
        value = claims.get(name)
        if isinstance(value, str):
            try:
                return check_username(value.strip().lower())
            except UserError:
                pass
    digest = hashlib.sha256(f"{claims.get('iss')}|{claims.get('sub')}".encode()).hexdigest()
    return f"oidc-{digest[:16]}"


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- routes ---------------------------------------------------------------------------------


def provider_of(request: Request) -> OidcProvider | None:
    return getattr(request.app.state, "oidc", None)


def _refused_page(request: Request, exc: OidcRefused) -> Response:
    log.warning("console_oidc_refused", reason=exc.reason)
    response = error_page(request, exc.status, exc.title, exc.message, exc.what_to_do)
    response.delete_cookie(FLOW_COOKIE, path="/sign-in/oidc")
    return response


def _not_configured(request: Request) -> Response:
    return error_page(
        request,
        404,
        "Sign-in through your organisation is not set up",
        "This console has no OpenID Connect provider configured.",
        "Sign in with your console user name and password, or ask your administrator.",
    )


def _provider_down(request: Request, provider: OidcProvider, exc: Exception) -> Response:
    log.warning("console_oidc_provider_unreachable", error=type(exc).__name__)
    return error_page(
        request,
        502,
        f"{provider.name} cannot be reached",
        f"The console could not reach {provider.name} to sign you in.",
        "Try again in a few minutes; if it goes on, tell your administrator.",
    )


@router.post("/sign-in/oidc", dependencies=[Depends(csrf_protect)])
def oidc_start(request: Request) -> Response:
    """Sends the browser to the provider, with state, nonce and the PKCE challenge."""
    provider = provider_of(request)
    if provider is None:
        return _not_configured(request)
    try:
        url, token = provider.begin()
    except (httpx2.HTTPError, ValueError) as exc:
        return _provider_down(request, provider, exc)
    response = Response(status_code=303, headers={"Location": url})
    response.set_cookie(
        FLOW_COOKIE,
        token,
        max_age=int(FLOW_TTL_S),
        httponly=True,
        samesite="lax",  # it must come back on the provider's (cross-site) redirect
        secure=bool(request.app.state.secure_cookies),
        path="/sign-in/oidc",
    )
    return response


@router.get(CALLBACK_PATH)
def oidc_callback(request: Request) -> Response:
    """The provider's redirect back: checks everything, then starts the session."""
    provider = provider_of(request)
    if provider is None:
        return _not_configured(request)
    flow = provider.take_flow(request.cookies.get(FLOW_COOKIE))
    params = request.query_params
    if flow is None:
        return _refused_page(
            request,
            OidcRefused(
                "no_pending_sign_in",
                400,
                "Your sign-in could not be completed",
                "The sign-in took too long, was already used, or was started in another "
                "browser. You have not been signed in.",
                "Start again from the sign-in page.",
            ),
        )
    if params.get("error"):
        return _refused_page(
            request,
            OidcRefused(
                "provider_error",
                401,
                f"{provider.name} did not sign you in",
                f"{provider.name} did not complete the sign-in (it answered "
                f"“{params.get('error', '')[:64]}”). You have not been signed in.",
                "Start again from the sign-in page, or ask your administrator.",
            ),
        )
    state, code = params.get("state"), params.get("code")
    if not state or not code:
        return _refused_page(request, _refused_verification("missing_code_or_state"))
    try:
        claims = provider.finish(flow, state, code)
        user = provider.user_for(claims)
    except OidcRefused as exc:
        return _refused_page(request, exc)
    except (httpx2.HTTPError, ValueError) as exc:
        return _provider_down(request, provider, exc)
    # The session cookie is SameSite=Strict, so a browser would not send it on a redirect
    # that is still part of the provider's cross-site navigation: a page of our own moves
    # on to the console instead (a same-site navigation).
    response = render(
        request,
        "oidc_signed_in.html",
        {"provider": provider.name, "role_name": ROLE_NAMES.get(user.role, user.role)},
    )
    start_session(request, user, response)
    response.delete_cookie(FLOW_COOKIE, path="/sign-in/oidc")
    return response
