"""`accord console`: the coordinators' and IG officers' web application.

Built on FastAPI (Starlette underneath) with server-rendered Jinja2 templates, styled with
GOV.UK Frontend and the MOJ Frontend (compiled from npm at set-up without the crown and
the GDS Transport font, served from /assets by the console itself, never a CDN). Pages work
without JavaScript; the live list's server-sent events are an enhancement.

Adding pages (how the IG pages plug in)
---------------------------------------
1. Write a module `accord/console/<area>.py` with `router = APIRouter()` and, optionally,
   `NAV = [NavItem("Agreements", "/ig/agreements", (IG,))]` for the service navigation.
   `create_app` includes `accord.console.ig` by itself when that module exists (its
   `router` and `NAV`); another module is added to `ROUTER_MODULES` below, one line.
2. Guard every route with a role: `user: IgUser` (`accord.console.auth`; the same as
   `Annotated[User, Depends(require_role(IG))]`). Without a session a GET goes to the
   sign-in page and anything else gets 401; another role gets 403, access-logged.
3. Templates go under `templates/<area>/`, each `{% extends "base.html" %}` filling
   `{% block title %}` and `{% block content %}` (and `{% block beforeContent %}` for
   breadcrumbs); render with `accord.console.web.render(request, "ig/x.html", {...})`,
   which adds `user`, `nav` and `csrf_field()`. `error_page(request, status, title,
   message, what_to_do)` renders a plain-English error with its status code (or raise
   `PageError(status, title, message, what_to_do)` from anywhere in a route).
4. Every POST: `dependencies=[Depends(csrf_protect)]` on the route, and
   `{{ csrf_field() }}` inside the `<form method="post">`. A forged or missing token is a
   403 page and nothing changes.
5. Personal data shown on a page: `request.app.state.access_log.viewed(request, user,
   keys, "what")` with the pseudonymous keys (never names). A refused attempt of your own
   (e.g. a recipient outside scope): `raise Forbidden(reason, target)`, which renders 403
   and records it.
6. Handy on `request.app.state`: `settings` (the console's `Settings`), `access_log`
   (`AccessLog`, `.entries(kind=...)` for the IG view), `users` (`UserStore`), `lists`
   (`ShareLists`, the live recipient lists), `hub` (the hub principal's settings for
   the audit topic and OPA).
7. Uploads: request bodies over `MAX_BODY_BYTES` are refused with 413 before they are read.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.console.accesslog import AccessLog
from accord.console.auth import (
    SESSION_COOKIE,
    CsrfFailed,
    Forbidden,
    SessionStore,
    SignInRequired,
    login_limiter,
    session_of,
)
from accord.console.users import ADMIN, COORDINATOR, IG, UserStore
from accord.console.web import CSP, NavItem, PageError, error_page
from accord.core import metrics
from accord.core.logging import get_logger
from accord.core.settings import Settings

log = get_logger("accord.console")

ASSETS_DIR: Final = Path(__file__).parent / "assets"
NODE_MODULES: Final = ASSETS_DIR / "node_modules"
STATIC_DIR: Final = Path(__file__).parent / "static"
# Only what the pages use: the stylesheet (compiled into assets/dist), GOV.UK Frontend's
# script and the MOJ Frontend's icons. GOV.UK's fonts (GDS Transport) and crown are GOV.UK's
# own and never served.
GOVUK_JS: Final = NODE_MODULES / "govuk-frontend" / "dist" / "govuk" / "govuk-frontend.min.js"
MOJ_IMAGES: Final = NODE_MODULES / "@ministryofjustice" / "frontend" / "moj" / "assets" / "images"
# Modules whose `router` (and `NAV`) the console includes when they exist.
ROUTER_MODULES: Final = (
    "accord.console.signin",
    "accord.console.oidc",
    "accord.console.coordinator",
    "accord.console.admin",
    "accord.console.ig",
    "accord.console.review",
)
MAX_BODY_BYTES: Final = 10 * 1024 * 1024  # the largest upload (a policy directory's archive)


class AssetsMissing(RuntimeError):
    pass


def assets_built() -> bool:
    return (ASSETS_DIR / "dist" / "console.css").is_file() and (
        NODE_MODULES / "govuk-frontend" / "dist" / "govuk"
    ).is_dir()


class ConsoleMiddleware:
    """Loads the session from its cookie into `request.state`, refuses bodies over
    MAX_BODY_BYTES (413) before they are read, and adds security headers to every
    response (a strict CSP: no inline script or style, nothing from another origin)."""

    def __init__(self, app: ASGIApp, sessions: SessionStore) -> None:
        self.app, self.sessions = app, sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session, expired = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        scope.setdefault("state", {})
        scope["state"]["session"] = session
        scope["state"]["session_expired"] = expired
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            scope["state"]["too_large"] = True

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise StarletteHTTPException(413)
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                for name, value in (
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store"),
                ):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
                # By route template (never the raw path, which may carry a key or an id).
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                metrics.REQUESTS.labels("console", route, str(message["status"])).inc()
            await send(message)

        if scope["state"].get("too_large"):
            await too_large_page(request)(scope, receive, send_with_headers)
        else:
            await self.app(scope, limited_receive, send_with_headers)


def too_large_page(request: Request) -> Response:
    return error_page(
        request,
        413,
        "The file is too large",
        f"The console takes at most {MAX_BODY_BYTES // (1024 * 1024)} MB in one request. "
        "Nothing has been changed.",
        "Send a smaller file.",
    )


def _include(app: FastAPI, module_name: str, nav: list[NavItem]) -> bool:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return False  # an optional area not built (yet)
        raise
    app.include_router(module.router)
    nav.extend(getattr(module, "NAV", ()))
    return True


def create_app(
    settings: Settings,
    *,
    users: UserStore | None = None,
    lists: Any | None = None,
    hub: Settings | None = None,
    access_log: AccessLog | None = None,
    clock: Any = time.monotonic,
    oidc: Any | None = None,
) -> FastAPI:
    """The console application. `settings` are the console's own (endpoints, state dir);
    `lists` the live recipient lists (`accord.console.lists.ShareLists`, started by
    `run_console`; None in tests that need no Kafka: the list pages then say the lists
    are unavailable); `hub` the hub principal's settings (audit topic, OPA); `oidc` the
    OpenID Connect provider (`accord.console.oidc.OidcProvider`; by default the one the
    settings describe, or none)."""
    app = FastAPI(
        title="Accord console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # pages, not an API
    )
    sessions = SessionStore(settings.console_session_idle_s, settings.console_session_max_s, clock)
    app.state.settings = settings
    app.state.hub = hub or settings
    app.state.users = users or UserStore(settings.console_users_path)
    app.state.sessions = sessions
    app.state.access_log = access_log or AccessLog(settings.console_access_log_path)
    app.state.login_limiter = login_limiter(settings.console_login_per_minute)
    app.state.lists = lists
    if oidc is None:
        from accord.console.oidc import OidcProvider

        oidc = OidcProvider.from_settings(settings)
    app.state.oidc = oidc
    app.state.secure_cookies = settings.console_tls
    app.state.nav = []
    app.state.areas = [m for m in ROUTER_MODULES if _include(app, m, app.state.nav)]

    app.add_middleware(ConsoleMiddleware, sessions=sessions)

    if not assets_built():
        log.warning("console_assets_missing", where=str(ASSETS_DIR))
    else:
        app.mount("/assets/moj/images", StaticFiles(directory=MOJ_IMAGES), name="moj-images")

        @app.get("/assets/js/govuk-frontend.min.js", include_in_schema=False)
        def govuk_frontend_js() -> Response:
            return FileResponse(GOVUK_JS, media_type="text/javascript")

        app.mount("/assets/dist", StaticFiles(directory=ASSETS_DIR / "dist"), name="dist")
    app.mount("/assets/console", StaticFiles(directory=STATIC_DIR), name="console-static")

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        session = session_of(request)
        if session is None or session.user is None:
            return RedirectResponse("/sign-in", status_code=303)
        for item in app.state.nav:
            if session.user.role in item.roles:
                return RedirectResponse(item.href, status_code=303)
        return error_page(
            request,
            404,
            "Nothing here for your role yet",
            f"The console has no pages for the {session.user.role_name.lower()} role.",
        )

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        source = app.state.lists
        return {"status": "ok", "lists": source.health() if source is not None else None}

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, exc: SignInRequired) -> Response:
        if request.method == "GET" and request.headers.get("accept") != "text/event-stream":
            target = "/sign-in?expired=1" if exc.expired else "/sign-in"
            response = RedirectResponse(target, status_code=303)
            return response
        return error_page(
            request,
            401,
            "Your session has ended" if exc.expired else "Sign in first",
            "You were signed out after a period without activity, or have not signed in."
            if exc.expired
            else "This page is only for signed-in users.",
            "Sign in again; anything you were sending was not saved.",
        )

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        return error_page(request, exc.status_code, exc.title, exc.message, exc.what_to_do)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        session = session_of(request)
        user = session.user if session else None
        app.state.access_log.denied(request, user, exc.reason, exc.target)
        return error_page(
            request,
            403,
            "You cannot see this page",
            "Your account does not give you access to this page or to this "
            "organisation's data. The attempt has been recorded.",
            "Go back to your own list, or ask your administrator if you need access.",
        )

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        session = session_of(request)
        app.state.access_log.denied(
            request, session.user if session else None, "form without a valid CSRF token"
        )
        return error_page(
            request,
            403,
            "The form could not be accepted",
            "The form did not come from this console page, or it was opened before you "
            "last signed in. Nothing has been changed.",
            "Go back, reload the page and send the form again.",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 413:
            return too_large_page(request)
        titles = {
            404: ("Page not found", "There is no such page, or the item it showed is gone."),
            405: ("That cannot be done here", "This page does not accept that kind of request."),
            429: ("Too many attempts", str(exc.detail)),
        }
        title, message = titles.get(exc.status_code, ("Something went wrong", str(exc.detail)))
        return error_page(request, exc.status_code, title, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        # Logged with its type only: a message could quote a record.
        log.error("console_request_failed", path=request.url.path, error=type(exc).__name__)
        return error_page(
            request,
            500,
            "Sorry, there is a problem with the console",
            "Something went wrong on our side. If you were sending a form, it may not have "
            "been saved.",
            "Try again in a few minutes; if it goes on, tell your administrator.",
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
        return error_page(
            request,
            400,
            "Some of what was sent is missing or wrong",
            f"Check: {', '.join(fields) or 'the form'}. Nothing has been changed.",
            "Go back and correct the form.",
        )

    return app


__all__ = ["ADMIN", "COORDINATOR", "IG", "create_app", "MAX_BODY_BYTES"]
