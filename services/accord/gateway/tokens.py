"""Partner API tokens: issued once, stored only as salted HMAC hashes, and they expire.

A token looks like ``acc_<id>_<secret>``. The file keeps, per id, the organisation, a
random salt, HMAC-SHA256(salt, secret), when it was issued and when it expires (90 days
by default, ACCORD_GATEWAY_TOKEN_TTL_DAYS); the secret itself is printed once by
`accord gateway token --as <org>` and never stored, so a leaked file does not let anyone
publish. The token alone decides the organisation: nothing in a request can name another.
A token without an expiry, past its expiry or revoked is refused.

`issue_token`, `rotate_token`, `revoke_tokens` and `list_tokens` are what `accord
partner add|rotate|revoke|list` call; listing shows id, organisation, issued and expires,
never a secret or hash.

The file is `ACCORD_GATEWAY_TOKENS_FILE`, by default `<state dir>/gateway-tokens.json`
(read from the environment here rather than the core settings, to keep the gateway's
configuration beside the gateway). The gateway re-reads it when it changes, so a newly
issued token works without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from accord.core.credentials import write_private
from accord.core.errors import AccordError
from accord.core.orgs import UnknownOrganisation, require_known
from accord.core.settings import Settings
from accord.core.topics import is_org_id

TOKENS_FILE_ENV: Final = "ACCORD_GATEWAY_TOKENS_FILE"
PREFIX: Final = "acc"
DEFAULT_TTL: Final = timedelta(days=90)


class TokenError(AccordError):
    """A token could not be issued (bad organisation id, unwritable file)."""


def tokens_file(settings: Settings) -> Path:
    """Where tokens are kept: $ACCORD_GATEWAY_TOKENS_FILE, else <state dir>/gateway-tokens.json."""
    configured = os.environ.get(TOKENS_FILE_ENV)
    return Path(configured) if configured else settings.state_dir / "gateway-tokens.json"


def _digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never its secret or hash."""

    token_id: str
    org: str
    issued_at: str
    expires_at: str | None

    def expired(self, now: datetime | None = None) -> bool:
        return _expired(self.expires_at, now)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a presented token: an org, or the reason it was refused."""

    org: str | None
    token_id: str | None  # set once the token's id is known to the store
    reason: str  # "ok", "malformed", "unknown", "wrong_secret", "expired"


def _expired(expires_at: str | None, now: datetime | None = None) -> bool:
    if not expires_at:
        return True  # no expiry is no token: fail closed
    try:
        expires = datetime.fromisoformat(expires_at)
    except ValueError:
        return True
    return (now or datetime.now(UTC)) >= expires


class TokenStore:
    """Issues tokens and tells which organisation a presented token belongs to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self._loaded_mtime: tuple[int, int, int] | None = None

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        document = json.loads(self.path.read_text(encoding="utf-8"))
        return dict(document.get("tokens", {}))

    def _refresh(self) -> None:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            self._entries, self._loaded_mtime = {}, None
            return
        # Every write replaces the file (a new inode), so a revocation is seen at once.
        version = (status.st_ino, status.st_mtime_ns, status.st_size)
        if version != self._loaded_mtime:
            self._entries, self._loaded_mtime = self._read(), version

    def issue(self, org: str, ttl: timedelta = DEFAULT_TTL, *, replace: bool = False) -> str:
        """A new token for `org`, valid for `ttl`; the caller shows it once, only its hash
        is kept. With `replace`, the organisation's other tokens are revoked with it."""
        if not is_org_id(org):
            raise TokenError(f"{org!r} is not an organisation id (e.g. city-of-edinburgh)")
        if ttl <= timedelta(0):
            raise TokenError(f"a token's lifetime must be positive, not {ttl}")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        now = datetime.now(UTC)
        with self._lock:
            entries = self._read()
            if replace:
                entries = {k: v for k, v in entries.items() if v.get("org") != org}
            entries[token_id] = {
                "org": org,
                "salt": salt,
                "hash": _digest(salt, secret),
                "issued_at": now.isoformat(timespec="seconds"),
                "expires_at": (now + ttl).isoformat(timespec="seconds"),
            }
            self._write(entries)
        return f"{PREFIX}_{token_id}_{secret}"

    def revoke(self, org: str) -> int:
        """Remove every token of `org`; how many there were. Refused from the next request."""
        with self._lock:
            entries = self._read()
            kept = {k: v for k, v in entries.items() if v.get("org") != org}
            if len(kept) != len(entries):
                self._write(kept)
        return len(entries) - len(kept)

    def list(self) -> list[TokenInfo]:
        with self._lock:
            entries = self._read()
        return sorted(
            (
                TokenInfo(k, str(v.get("org")), str(v.get("issued_at")), v.get("expires_at"))
                for k, v in entries.items()
            ),
            key=lambda info: (info.org, info.issued_at, info.token_id),
        )

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        document = json.dumps({"version": 2, "tokens": entries}, indent=2, sort_keys=True)
        try:
            write_private(self.path, document)
        except OSError as exc:
            raise TokenError(f"cannot write the token file {self.path}: {exc}") from exc

    def check(self, token: str, now: datetime | None = None) -> Verdict:
        """Whose token this is, or why it is refused (never says anything about the secret)."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
            return Verdict(None, None, "malformed")
        token_id, secret = parts[1], parts[2]
        with self._lock:
            self._refresh()
            entry = self._entries.get(token_id)
        if entry is None:
            return Verdict(None, None, "unknown")
        if not hmac.compare_digest(_digest(entry["salt"], secret), entry["hash"]):
            return Verdict(None, token_id, "wrong_secret")
        if _expired(entry.get("expires_at"), now):
            return Verdict(None, token_id, "expired")
        return Verdict(str(entry["org"]), token_id, "ok")

    def org_for(self, token: str, now: datetime | None = None) -> str | None:
        """The organisation of a valid token, or None (unknown, malformed, wrong secret,
        expired or revoked)."""
        return self.check(token, now).org


def _ttl(settings: Settings, ttl: timedelta | None) -> timedelta:
    return ttl if ttl is not None else timedelta(days=settings.gateway_token_ttl_days)


def _known(settings: Settings, org: str) -> str:
    """`org` if the partner registry names it; a token for a mistyped id would publish
    as an organisation nobody knows (and its records replace real people's sources)."""
    try:
        return require_known(settings, org, flag="--as")
    except UnknownOrganisation as exc:
        raise TokenError(str(exc)) from None


def issue_token(settings: Settings, org: str, ttl: timedelta | None = None) -> str:
    """A new gateway token for `org` (shown once by the caller); others stay valid.
    An organisation no agreement or registration file names is refused (TokenError)."""
    return TokenStore(tokens_file(settings)).issue(_known(settings, org), _ttl(settings, ttl))


def rotate_token(settings: Settings, org: str, ttl: timedelta | None = None) -> str:
    """A new gateway token for `org`; every earlier one of `org` is revoked with it."""
    store = TokenStore(tokens_file(settings))
    return store.issue(_known(settings, org), _ttl(settings, ttl), replace=True)


def revoke_tokens(settings: Settings, org: str) -> int:
    """Revoke every gateway token of `org`; a running gateway refuses them at once."""
    return TokenStore(tokens_file(settings)).revoke(org)


def list_tokens(settings: Settings) -> list[TokenInfo]:
    """Every token's id, organisation, issue and expiry time (never a secret)."""
    return TokenStore(tokens_file(settings)).list()
