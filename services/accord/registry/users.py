"""The registry's users: one per principal, each stored as a scrypt hash of its secret.

Callers sign in with HTTP basic auth (what Confluent clients send as
`basic.auth.user.info`), with the same principal name and secret as their Kafka SCRAM
credential (`accord.core.credentials`). The store is a JSON file, 0600 under 0700
(`ACCORD_REGISTRY_USERS_FILE`, default `<state dir>/registry/users.json`), holding per
principal a random salt and `hashlib.scrypt(secret, salt, n=2**14, r=8, p=1)`; the registry
re-reads it when it changes, so `set_user` and `remove_user` (called by `accord stack up`
and `accord partner add|rotate|revoke`) take effect on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from accord.core.credentials import (
    SERVICE_PRINCIPALS,
    check_principal,
    ensure_credential,
    write_private,
)
from accord.core.settings import Settings

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_FILE_LOCK = threading.Lock()


def _hash(secret: str, salt: bytes, params: dict[str, int]) -> str:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=params["n"], r=params["r"], p=params["p"], dklen=32
    ).hex()


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()).get("users", {}))


def _write(path: Path, users: dict[str, Any]) -> None:
    write_private(path, json.dumps({"version": 1, "users": users}, indent=1, sort_keys=True))


def set_user(settings: Settings, principal: str, secret: SecretStr | str) -> None:
    """Add `principal` or replace its secret (a rotation takes effect on the next request)."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    salt = secrets.token_bytes(16)
    entry = {"salt": salt.hex(), "scrypt": _hash(value, salt, SCRYPT), **SCRYPT}
    with _FILE_LOCK:
        users = _read(settings.registry_users_path)
        users[check_principal(principal)] = entry
        _write(settings.registry_users_path, users)


def remove_user(settings: Settings, principal: str) -> bool:
    """Remove `principal`; True if it was there. Its next request gets 401."""
    with _FILE_LOCK:
        users = _read(settings.registry_users_path)
        found = users.pop(principal, None) is not None
        if found:
            _write(settings.registry_users_path, users)
    return found


def provision(settings: Settings, principal: str) -> None:
    """Make sure `principal` holds a saved credential and may sign in to the registry."""
    set_user(settings, principal, ensure_credential(settings, principal).secret)


def provision_services(settings: Settings) -> None:
    """The hub's service principals, as `accord stack up` registers them."""
    for principal in SERVICE_PRINCIPALS:
        provision(settings, principal)


def provision_organisations(settings: Settings, orgs: Iterable[str]) -> None:
    """Credentials and registry users for organisations not yet holding them (what
    `accord partner add` does per organisation; the demo and the tests use it for the
    synthetic partners they publish as)."""
    users = _read(settings.registry_users_path)
    for org in sorted(set(orgs)):
        if org not in users:
            provision(settings, org)


class UserStore:
    """Verifies basic-auth credentials against the file, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._users: dict[str, Any] = {}
        self._mtime: float | None = None
        # (principal, sha256 of secret) verified since the file last changed: scrypt is
        # deliberately slow, so each secret is hashed once per change, not per request.
        self._verified: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._users, self._mtime, self._verified = {}, None, set()
            return
        if mtime != self._mtime:
            self._users, self._mtime, self._verified = _read(self.path), mtime, set()

    def verify(self, principal: str, secret: str) -> bool:
        fingerprint = (principal, hashlib.sha256(secret.encode()).hexdigest())
        with self._lock:
            self._refresh()
            if fingerprint in self._verified:
                return True
            entry = self._users.get(principal)
        if entry is None:
            return False
        params = {k: int(entry[k]) for k in ("n", "r", "p")}
        good = hmac.compare_digest(
            _hash(secret, bytes.fromhex(entry["salt"]), params), entry["scrypt"]
        )
        if good:
            with self._lock:
                self._verified.add(fingerprint)
        return good
