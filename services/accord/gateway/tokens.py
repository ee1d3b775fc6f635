"""Partner API tokens: issued once, stored only as salted HMAC hashes.

A token looks like ``acc_<id>_<secret>``. The file keeps, per id, the organisation, a
random salt and HMAC-SHA256(salt, secret); the secret itself is printed once by
`accord gateway token --as <org>` and never stored, so a leaked file does not let anyone
publish. The token alone decides the organisation: nothing in a request can name another.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from accord.core.errors import AccordError
from accord.core.settings import Settings
from accord.core.topics import is_org_id

TOKENS_FILE_ENV: Final = "ACCORD_GATEWAY_TOKENS_FILE"
PREFIX: Final = "acc"


class TokenError(AccordError):
    """A token could not be issued (bad organisation id, unwritable file)."""


def tokens_file(settings: Settings) -> Path:
    """Where tokens are kept: $ACCORD_GATEWAY_TOKENS_FILE, else <state dir>/gateway-tokens.json."""
    configured = os.environ.get(TOKENS_FILE_ENV)
    return Path(configured) if configured else settings.state_dir / "gateway-tokens.json"


def _digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


class TokenStore:
    """Issues tokens and tells which organisation a presented token belongs to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self._loaded_mtime: float | None = None

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        document = json.loads(self.path.read_text(encoding="utf-8"))
        return dict(document.get("tokens", {}))

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._entries, self._loaded_mtime = {}, None
            return
        if mtime != self._loaded_mtime:
            self._entries, self._loaded_mtime = self._read(), mtime

    def issue(self, org: str) -> str:
        """A new token for `org`; the caller shows it once, only its hash is kept."""
        if not is_org_id(org):
            raise TokenError(f"{org!r} is not an organisation id (e.g. city-of-edinburgh)")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        with self._lock:
            entries = self._read()
            entries[token_id] = {
                "org": org,
                "salt": salt,
                "hash": _digest(salt, secret),
                "issued_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._write(entries)
        return f"{PREFIX}_{token_id}_{secret}"

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"version": 1, "tokens": entries}, handle, indent=2, sort_keys=True)
            os.replace(temporary, self.path)
        except OSError as exc:
            raise TokenError(f"cannot write the token file {self.path}: {exc}") from exc

    def revoke_org(self, org: str) -> int:
        """Forget every token of `org`; returns how many there were."""
        with self._lock:
            entries = self._read()
            kept = {k: v for k, v in entries.items() if v.get("org") != org}
            if len(kept) != len(entries):
                self._write(kept)
        return len(entries) - len(kept)

    def count_by_org(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self._read().values():
            counts[entry["org"]] = counts.get(entry["org"], 0) + 1
        return counts

    def org_for(self, token: str) -> str | None:
        """The organisation of a valid token, or None (unknown, malformed or wrong secret)."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        token_id, secret = parts[1], parts[2]
        with self._lock:
            self._refresh()
            entry = self._entries.get(token_id)
        if entry is None:
            return None
        if not hmac.compare_digest(_digest(entry["salt"], secret), entry["hash"]):
            return None
        return str(entry["org"])
