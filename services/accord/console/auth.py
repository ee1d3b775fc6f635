"""Sessions, roles, CSRF and sign-in limits of the console.

Sessions live in the console's memory, keyed by a random 256-bit token in the
`accord_session` cookie (HttpOnly, SameSite=Strict, Secure when served over TLS). A
session ends after ACCORD_CONSOLE_SESSION_IDLE_S without a request, or
ACCORD_CONSOLE_SESSION_MAX_S after sign-in, whichever comes first, at sign-out, and when
its user leaves the users file or changes role or organisation. Signing in always
starts a new session (no fixation). A restart of the console signs everyone out.

Every state-changing request (POST) carries the session's CSRF token, as the form field
`csrf_token` (the `csrf_field()` template global writes it) or the `X-CSRF-Token` header;
a missing or wrong token is refused with 403 and changes nothing. The sign-in form has a
token too, from a session that has no user yet.

Pages guard themselves with FastAPI dependencies:

    @router.get("/ig/agreements")
    def agreements(request: Request, user: IgUser): ...

    @router.post("/ig/agreements/{id}/suspend", dependencies=[Depends(csrf_protect)])
    def suspend(request: Request, user: IgUser, reason: Annotated[str, Form()]): ...

(`IgUser`, `CoordinatorUser`, `AdminUser` and `SignedInUser` are
`Annotated[User, Depends(...)]` aliases of `require_role(...)` and `current_user`.)

A request without a session is sent to the sign-in page (GET) or refused with 401; a user
of another role gets 403, and the attempt goes to the access log.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Final

from fastapi import Depends, Request

from accord.console.users import ADMIN, COORDINATOR, IG, User
from accord.gateway.limits import RateLimiter

SESSION_COOKIE: Final = "accord_session"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
MAX_SESSIONS: Final = 10_000  # the stalest go first beyond this (anonymous ones included)


class SignInRequired(Exception):
    """No session, or it expired: sign in (again)."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("sign-in required")
        self.expired = expired


class Forbidden(Exception):
    """Signed in, but this page or this recipient's data is not for this user (403)."""

    def __init__(self, reason: str, target: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.target = reason, target


class CsrfFailed(Exception):
    """A POST without this session's CSRF token (403, nothing changes)."""


@dataclass
class Session:
    token: str
    csrf: str
    created: float
    seen: float
    user: User | None = None
    flash: list[str] = field(default_factory=list)


class SessionStore:
    def __init__(
        self, idle_s: float, max_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_s, self.max_s, self.clock = idle_s, max_s, clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def new(self, user: User | None = None) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, user)
        with self._lock:
            self._sessions[session.token] = session
            while len(self._sessions) > MAX_SESSIONS:
                # The stalest session without a user goes first, so a flood of sign-in
                # page loads never signs anyone out.
                stale = next((t for t, s in self._sessions.items() if s.user is None), None)
                if stale is None:
                    self._sessions.popitem(last=False)
                else:
                    del self._sessions[stale]
        return session

    def get(self, token: str | None) -> tuple[Session | None, bool]:
        """(the live session, False) or (None, whether it existed and expired)."""
        if not token:
            return None, False
        now = self.clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None, False
            if now - session.seen > self.idle_s or now - session.created > self.max_s:
                del self._sessions[token]
                return None, session.user is not None
            session.seen = now
            self._sessions.move_to_end(token)
            return session, False

    def end(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def end_user(self, username: str) -> int:
        with self._lock:
            gone = [t for t, s in self._sessions.items() if s.user and s.user.username == username]
            for token in gone:
                del self._sessions[token]
        return len(gone)


def login_limiter(per_minute: float) -> RateLimiter:
    """Sign-in attempts: `per_minute` at once, then that many a minute (per key)."""
    return RateLimiter(per_minute / 60.0, max(1, int(per_minute)))


# --- dependencies ---------------------------------------------------------------------------


def session_of(request: Request) -> Session | None:
    """The request's live session (signed in or not), set by the console's middleware."""
    return getattr(request.state, "session", None)


def current_user(request: Request) -> User:
    """The signed-in user; SignInRequired (to the sign-in page) when there is none. The user
    is checked against the users file on every request."""
    session = session_of(request)
    if session is None or session.user is None:
        raise SignInRequired(expired=getattr(request.state, "session_expired", False))
    if session.user.source == "oidc":
        # Signed in through the provider: the role map still gives the same role and org.
        oidc = getattr(request.app.state, "oidc", None)
        mapped = oidc.role_map.resolve(session.user.idp_values) if oidc is not None else None
        if mapped is None or (mapped.role, mapped.org) != (session.user.role, session.user.org):
            request.app.state.sessions.end(session.token)
            raise SignInRequired(expired=True)
        return session.user
    users = request.app.state.users
    now = users.get(session.user.username)
    if now is None or (now.role, now.org) != (session.user.role, session.user.org):
        request.app.state.sessions.end(session.token)
        raise SignInRequired(expired=True)
    return session.user


def require_role(*roles: str) -> Callable[[Request], User]:
    """A dependency: the signed-in user if their role is one of `roles`; otherwise 403,
    recorded in the access log."""

    def dependency(request: Request) -> User:
        user = current_user(request)
        if user.role not in roles:
            raise Forbidden(f"the page is for {' or '.join(roles)} users, not {user.role}")
        return user

    dependency.__name__ = f"require_role_{'_'.join(roles)}"
    return dependency


def require_recipient(request: Request, user: User, org: str) -> None:
    """Refuse (403, access-logged) a coordinator asking for another recipient's data."""
    if user.role != COORDINATOR or user.org != org:
        raise Forbidden(f"{user.username} may read only {user.org or 'no'} recipient's list", org)


async def csrf_protect(request: Request) -> None:
    """A dependency for every POST: the form field or header must carry this session's
    CSRF token, else 403 and nothing is done."""
    session = session_of(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if session is None or not sent or not hmac.compare_digest(sent, session.csrf):
        raise CsrfFailed()


SignedInUser = Annotated[User, Depends(current_user)]
CoordinatorUser = Annotated[User, Depends(require_role(COORDINATOR))]
IgUser = Annotated[User, Depends(require_role(IG))]
AdminUser = Annotated[User, Depends(require_role(ADMIN))]
