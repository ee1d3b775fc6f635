"""The console's local users: a JSON file of names, roles, organisations and Argon2id hashes.

    {"users": {"alice": {"role": "coordinator", "org": "city-of-edinburgh",
                         "password_hash": "$argon2id$..."}}}

The file (ACCORD_CONSOLE_USERS_FILE, default <state dir>/console/users.json) is written
0600 under a 0700 directory; it never holds a password, only its Argon2id hash
(argon2-cffi's defaults, RFC 9106's second recommended parameters). `accord console user
add` writes it; the console re-reads it when it changes, so a removed user's next request
is refused without a restart.

Roles:
- `coordinator`: one recipient's staff (a council or a third-sector organisation); sees only
  that recipient's list (`org`).
- `ig`: an information-governance officer: the governance pages, decision counts of every
  recipient, never a list's contact details.
- `admin`: manages the console's users.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from accord.core.credentials import write_private
from accord.core.errors import AccordError
from accord.core.logging import get_logger

log = get_logger("accord.console.users")

COORDINATOR: Final = "coordinator"
IG: Final = "ig"
ADMIN: Final = "admin"
ROLES: Final = (COORDINATOR, IG, ADMIN)
ROLE_NAMES: Final = {
    COORDINATOR: "Coordinator",
    IG: "Information governance officer",
    ADMIN: "Administrator",
}
MIN_PASSWORD_CHARS: Final = 12
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")

_hasher = PasswordHasher()
# Verifying against this hash when the user is unknown takes as long as a real check, so
# the time of a refusal does not tell which user names exist.
_DUMMY_HASH: Final = _hasher.hash(secrets.token_urlsafe(16))


class UserError(AccordError):
    """A console user cannot be added or read as asked."""


@dataclass(frozen=True)
class User:
    """A signed-in person. `org` is the recipient a coordinator works for (None for IG
    officers and administrators, who belong to the hub)."""

    username: str
    role: str
    org: str | None = None
    display_name: str | None = None
    # "local" (the users file) or "oidc" (the council's provider; `idp_values` are the app
    # roles and group ids its ID token carried, re-checked against the role map).
    source: str = "local"
    idp_values: tuple[str, ...] = ()

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role)


def check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise UserError(
            f"{username!r} is not a user name: lower-case letters, digits and . _ @ -, "
            "at most 64 characters"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return password


class UserStore:
    """The users file, read again whenever it changes on disk."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        """`hasher`: argon2-cffi's defaults unless given (tests give cheaper parameters)."""
        self.path = path
        self.hasher = hasher or _hasher
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, dict] = {}

    def _load(self) -> dict[str, dict]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._users = None, {}
            return self._users
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                document = json.loads(self.path.read_text() or "{}")
            except (OSError, ValueError) as exc:
                raise UserError(
                    f"the console's users file {self.path} is unreadable: {exc}"
                ) from None
            users = document.get("users") if isinstance(document, dict) else None
            self._users = users if isinstance(users, dict) else {}
            self._stamp = stamp
        return self._users

    def get(self, username: str) -> User | None:
        with self._lock:
            entry = self._load().get(username)
        if not isinstance(entry, dict) or entry.get("role") not in ROLES:
            return None
        return User(username, entry["role"], entry.get("org"), entry.get("display_name"))

    def users(self) -> list[User]:
        with self._lock:
            names = sorted(self._load())
        return [user for name in names if (user := self.get(name)) is not None]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password is theirs, else None (the same time either way)."""
        with self._lock:
            entry = self._load().get(username)
        stored = entry.get("password_hash") if isinstance(entry, dict) else None
        try:
            self.hasher.verify(stored or _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if not stored:
            return None
        user = self.get(username)
        if user is not None and self.hasher.check_needs_rehash(stored):
            try:
                self._set(username, {**entry, "password_hash": self.hasher.hash(password)})
            except OSError as exc:
                # A read-only users file (a deployment's mounted Secret): the old hash
                # still verifies; the sign-in goes on.
                log.warning("console_user_rehash_skipped", error=type(exc).__name__)
        return user

    def add(
        self,
        username: str,
        role: str,
        password: str,
        org: str | None = None,
        display_name: str | None = None,
        replace: bool = False,
    ) -> User:
        """Add (or with `replace`, update) a user; the password is stored only hashed."""
        check_username(username)
        check_password(password)
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        if role == COORDINATOR and not org:
            raise UserError("a coordinator works for one recipient: give its organisation")
        with self._lock:
            exists = username in self._load()
        if exists and not replace:
            raise UserError(f"user {username!r} exists already (replace it to change it)")
        entry = {"role": role, "password_hash": self.hasher.hash(password)}
        if org:
            entry["org"] = org
        if display_name:
            entry["display_name"] = display_name
        self._set(username, entry)
        user = self.get(username)
        assert user is not None
        return user

    def remove(self, username: str) -> bool:
        with self._lock:
            users = dict(self._load())
            if users.pop(username, None) is None:
                return False
            self._write(users)
        return True

    def _set(self, username: str, entry: dict) -> None:
        with self._lock:
            users = dict(self._load())
            users[username] = entry
            self._write(users)

    def _write(self, users: dict[str, dict]) -> None:
        write_private(self.path, json.dumps({"users": users}, indent=2, sort_keys=True) + "\n")
        self._stamp = None  # read back on next use
