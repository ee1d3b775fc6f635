"""Credentials of Accord's principals: one secret per principal, kept 0600 under 0700.

A principal is a Kafka SCRAM user, and the same name and secret sign in to the schema
registry (HTTP basic auth). There is one principal per organisation in the partner
registry, one per hub service (worker, registry, gateway, console, audit) and the
administrator. Secrets are generated here (`secrets.token_urlsafe`, 32 random bytes),
never stored in the repository, and read back from

- `ACCORD_PRINCIPAL` with `ACCORD_SECRET` or `ACCORD_SECRET_FILE` (a deployed process), or
- `ACCORD_CREDENTIALS_FILE` (a JSON file `{"principal": ..., "secret": ...}`), or
- `<credentials dir>/<principal>.json`, the file `accord stack up` and `accord partner add`
  write for the local stack (`ACCORD_CREDENTIALS_DIR`, default `<state dir>/credentials`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from accord.core.errors import AccordError
from accord.core.settings import Settings

ADMIN = "admin"
WORKER = "accord-worker"
REGISTRY = "accord-registry"
GATEWAY = "accord-gateway"
CONSOLE = "accord-console"
AUDIT = "accord-audit"
# Whoever settles the matcher's review queue (`accord match review`, the console's page).
REVIEWER = "accord-reviewer"
# The hub's own principals, each with the ACLs its service needs (accord.core.access).
SERVICE_PRINCIPALS = (ADMIN, WORKER, REGISTRY, GATEWAY, CONSOLE, AUDIT, REVIEWER)

_PRINCIPAL = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class CredentialError(AccordError):
    """A principal's credentials are missing, unreadable or malformed."""


@dataclass(frozen=True)
class Credential:
    principal: str
    secret: SecretStr

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"Credential(principal={self.principal!r}, secret=**********)"


def check_principal(principal: str) -> str:
    if not _PRINCIPAL.match(principal):
        raise CredentialError(
            f"{principal!r} is not a principal name (lower-case letters, digits and '-')"
        )
    return principal


def credentials_dir(settings: Settings) -> Path:
    return settings.credentials_dir or settings.state_dir / "credentials"


def credential_file(settings: Settings, principal: str) -> Path:
    return credentials_dir(settings) / f"{check_principal(principal)}.json"


def private_dir(path: Path, tighten: bool = False) -> Path:
    """Create `path` and its missing parents 0700. An existing directory is left as it
    is (it may be the user's, e.g. /tmp), unless `tighten` says it is Accord's own."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)  # mkdir's mode is filtered by the umask
    if tighten:
        path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` 0600 under a 0700 directory, atomically (no world-readable
    moment: the file is created 0600 before anything is written to it)."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path


def new_secret() -> SecretStr:
    return SecretStr(secrets.token_urlsafe(32))


def save_credential(settings: Settings, credential: Credential) -> Path:
    document = {"principal": credential.principal, "secret": credential.secret.get_secret_value()}
    return write_private(
        credential_file(settings, credential.principal), json.dumps(document) + "\n"
    )


def create_credential(settings: Settings, principal: str) -> Credential:
    """A new secret for `principal`, saved to its file (replacing any earlier one)."""
    credential = Credential(check_principal(principal), new_secret())
    save_credential(settings, credential)
    return credential


def ensure_credential(settings: Settings, principal: str) -> Credential:
    """The saved credential of `principal`, created if it has none yet."""
    path = credential_file(settings, principal)
    if path.exists():
        return read_credential_file(path)
    return create_credential(settings, principal)


def read_credential_file(path: Path) -> Credential:
    try:
        document = json.loads(path.read_text())
        return Credential(check_principal(document["principal"]), SecretStr(document["secret"]))
    except FileNotFoundError:
        raise CredentialError(f"no credentials file at {path}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CredentialError(
            f"credentials file {path} is unreadable: {type(exc).__name__}"
        ) from None


def mounted_secret(settings: Settings, principal: str) -> Credential | None:
    """`principal`'s secret from ACCORD_SECRETS_DIR/<principal> (a Secret a deployment
    mounted), or None when no such directory is set or it holds no file for `principal`."""
    if settings.secrets_dir is None:
        return None
    path = settings.secrets_dir / check_principal(principal)
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialError(
            f"ACCORD_SECRETS_DIR file {path} is unreadable: {exc.strerror}"
        ) from None
    if not secret:
        raise CredentialError(f"ACCORD_SECRETS_DIR file {path} is empty")
    return Credential(principal, SecretStr(secret))


def held_credential(settings: Settings, default_principal: str) -> Credential:
    """The credential this process signs in with.

    An explicit principal (ACCORD_PRINCIPAL with ACCORD_SECRET or ACCORD_SECRET_FILE) or
    credentials file (ACCORD_CREDENTIALS_FILE) wins; otherwise the saved file of the
    command's own principal (`default_principal`: the worker's for `accord worker`, the
    organisation's for `accord publish --as`)."""
    if settings.principal:
        if settings.secret is not None:
            return Credential(check_principal(settings.principal), settings.secret)
        if settings.secret_file is not None:
            try:
                secret = settings.secret_file.read_text().strip()
            except OSError as exc:
                raise CredentialError(
                    f"ACCORD_SECRET_FILE {settings.secret_file} is unreadable: {exc.strerror}"
                ) from None
            return Credential(check_principal(settings.principal), SecretStr(secret))
        mounted = mounted_secret(settings, settings.principal)
        if mounted is not None:
            return mounted
        return read_credential_file(credential_file(settings, settings.principal))
    if settings.credentials_file is not None:
        return read_credential_file(settings.credentials_file)
    path = credential_file(settings, default_principal)
    if not path.exists():
        raise CredentialError(
            f"no credentials held for {default_principal}: expected {path} "
            f"(`accord partner add {default_principal}` creates an organisation's; "
            "`accord stack up` the hub's), or set ACCORD_PRINCIPAL and ACCORD_SECRET_FILE"
        )
    return read_credential_file(path)
