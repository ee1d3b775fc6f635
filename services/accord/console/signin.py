"""Sign-in and sign-out of local users (Argon2id), and the sign-in page, which also offers
"Sign in with <provider>" when a council's OpenID Connect provider (Entra ID) is configured
(`accord.console.oidc`). ACCORD_CONSOLE_LOCAL_USERS=false takes the user name and password
form away (and refuses its POST with 403).

Sign-in attempts are limited per user name and per client address
(ACCORD_CONSOLE_LOGIN_PER_MINUTE): beyond it the answer is 429 with Retry-After, and
the password is not even checked. A failed sign-in says only that the name or password
is wrong (not which).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from accord.console.auth import SESSION_COOKIE, csrf_protect, session_of
from accord.console.users import User
from accord.console.web import CSP, error_page, render
from accord.core.logging import get_logger
from accord.gateway.limits import retry_after

log = get_logger("accord.console")
router = APIRouter()

MAX_FIELD_CHARS: Final = 256


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=bool(request.app.state.secure_cookies),
        path="/",
    )


def start_session(request: Request, user: User, response: Response) -> None:
    """A new session for `user` (never the anonymous one: no fixation)."""
    sessions = request.app.state.sessions
    old = session_of(request)
    if old is not None:
        sessions.end(old.token)
    session = sessions.new(user)
    set_session_cookie(request, response, session.token)
    log.info("console_signed_in", user=user.username, role=user.role, org=user.org)


def sign_in_page(
    request: Request, error: str | None = None, username: str = "", status_code: int = 200
) -> Response:
    sessions = request.app.state.sessions
    session = session_of(request)
    fresh = session is None
    if fresh:
        session = sessions.new()
        request.state.session = session  # so the form's CSRF field is this session's
    oidc = getattr(request.app.state, "oidc", None)
    headers = None
    if oidc is not None:
        # The provider's button: its form's redirect goes to the provider, which the CSP's
        # form-action must allow (Chromium enforces it on the redirect).
        origins = " ".join(oidc.form_origins())
        headers = {
            "Content-Security-Policy": CSP.replace(
                "form-action 'self'", f"form-action 'self' {origins}"
            )
        }
    response = render(
        request,
        "signin.html",
        {
            "error": error,
            "username": username,
            "expired": request.query_params.get("expired") == "1",
            "local_users": request.app.state.settings.console_local_users,
            "oidc_name": oidc.name if oidc is not None else None,
        },
        status_code=status_code,
        headers=headers,
    )
    if fresh:
        set_session_cookie(request, response, session.token)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request) -> Response:
    session = session_of(request)
    if session is not None and session.user is not None:
        return RedirectResponse("/", status_code=303)
    return sign_in_page(request)


@router.post("/sign-in", dependencies=[Depends(csrf_protect)])
def sign_in(
    request: Request,
    username: Annotated[str, Form(max_length=MAX_FIELD_CHARS)] = "",
    password: Annotated[str, Form(max_length=MAX_FIELD_CHARS)] = "",
) -> Response:
    if not request.app.state.settings.console_local_users:
        return error_page(
            request,
            403,
            "Sign-in with a user name and password is turned off",
            "This console signs people in through their organisation's account only.",
            "Go back to the sign-in page and use the button there.",
        )
    username = username.strip().lower()
    if not username or not password:
        return sign_in_page(request, "Enter your user name and password", username, status_code=400)
    limiter = request.app.state.login_limiter
    client = request.client.host if request.client else "unknown"
    wait = max(limiter.take(f"user:{username}"), limiter.take(f"client:{client}"))
    if wait > 0:
        log.warning("console_sign_in_limited", user=username)
        return error_page(
            request,
            429,
            "Too many sign-in attempts",
            "There have been too many attempts to sign in to this account or from this "
            "computer in the last minute.",
            f"Wait {retry_after(wait)} seconds, then try again.",
            headers={"Retry-After": retry_after(wait)},
        )
    user = request.app.state.users.authenticate(username, password)
    if user is None:
        log.warning("console_sign_in_failed", user=username)
        return sign_in_page(
            request, "The user name or password is not right", username, status_code=401
        )
    response = RedirectResponse("/", status_code=303)
    start_session(request, user, response)
    return response


@router.post("/sign-out", dependencies=[Depends(csrf_protect)])
def sign_out(request: Request) -> Response:
    session = session_of(request)
    if session is not None:
        request.app.state.sessions.end(session.token)
        if session.user:
            log.info("console_signed_out", user=session.user.username)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
