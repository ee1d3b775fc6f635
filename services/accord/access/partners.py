"""An organisation's access, end to end: its principal, its ACLs, its gateway tokens.

`add` and `rotate` give an organisation a new secret (written 0600 to its credentials
file, or returned once to be handed over) and apply the access model; `revoke` removes
its SCRAM credential, its ACLs and its gateway tokens. ACLs are checked on every request,
so a connected client loses access as soon as the broker has applied the deletion (in
practice well within a second; `accord security matrix` and the tests measure it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from accord.access import provision
from accord.access.registry import registered_organisations
from accord.core.credentials import (
    Credential,
    CredentialError,
    create_credential,
    credential_file,
)
from accord.core.kafka import confluent_admin
from accord.core.logging import get_logger
from accord.core.orgs import suggest
from accord.core.settings import Settings
from accord.gateway.tokens import list_tokens, revoke_tokens, rotate_token
from accord.registry.users import remove_user, set_user

log = get_logger("accord.access.partners")


@dataclass(frozen=True)
class Access:
    org: str
    credential: Credential
    token: str  # the gateway token, shown once


@dataclass(frozen=True)
class PartnerStatus:
    org: str
    revoked: bool
    credential: bool  # a credentials file is held here
    scram: bool  # the broker knows a SCRAM credential
    grants: int
    tokens: int


def _require_registered(settings: Settings, org: str) -> None:
    known = registered_organisations(settings)
    if org not in known:
        close = suggest(org, known)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise CredentialError(
            f"{org} is not in the partner registry{hint}: name it in an agreement under "
            f"policies/agreements/ or add partners/{org}.yaml first"
        )


def _new_access(settings: Settings, org: str) -> Access:
    credential = create_credential(settings, org)
    admin = confluent_admin(provision.admin_connection(settings))
    provision.set_scram(admin, [credential])
    set_user(settings, org, credential.secret.get_secret_value())
    token = rotate_token(settings, org)
    return Access(org, credential, token)


def add_partner(settings: Settings, org: str) -> Access:
    """Give `org` a principal, its ACLs and its topics, and a gateway token."""
    _require_registered(settings, org)
    provision.set_revoked(settings, org, False)
    access = _new_access(settings, org)
    # Returns once every broker lets `org` in with its new secret and shows it its topics.
    provision.apply(settings, renewed=[org])
    log.info("partner_added", org=org)
    return access


def rotate_partner(settings: Settings, org: str) -> Access:
    """A new secret and a new gateway token; the old ones stop working."""
    _require_registered(settings, org)
    if org in provision.revoked(settings):
        raise CredentialError(f"{org} is revoked; `accord partner add {org}` restores it")
    access = _new_access(settings, org)
    # The new secret works on every broker before it is handed over.
    provision.wait_until_applied(
        settings, provision.organisation_topics(settings, org), partners=[org]
    )
    log.info("partner_rotated", org=org)
    return access


def revoke_partner(settings: Settings, org: str) -> int:
    """Remove `org`'s credential, ACLs and tokens; returns the grants removed."""
    provision.set_revoked(settings, org, True)
    admin = confluent_admin(provision.admin_connection(settings))
    own = [g for g in provision.broker_grants(admin) if g.principal == org]
    removed = provision.remove_grants(admin, own)
    provision.delete_scram(admin, org)
    revoke_tokens(settings, org)
    remove_user(settings, org)
    credential_file(settings, org).unlink(missing_ok=True)
    log.info("partner_revoked", org=org, grants=removed)
    return removed


def partner_status(settings: Settings) -> list[PartnerStatus]:
    admin = confluent_admin(provision.admin_connection(settings))
    scram = provision.scram_users(admin)
    grants = provision.broker_grants(admin)
    gone = provision.revoked(settings)
    tokens = Counter(info.org for info in list_tokens(settings))
    orgs = sorted(set(registered_organisations(settings)) | gone)
    return [
        PartnerStatus(
            org,
            org in gone,
            credential_file(settings, org).exists(),
            org in scram,
            sum(1 for g in grants if g.principal == org),
            tokens.get(org, 0),
        )
        for org in orgs
    ]
