"""Which topics the worker reads and writes, and whether they exist.

Partner topics are read only for registered organisations: every party to an agreement
OPA serves and every partner with a registration file under partners/. The stage topics,
the changelogs and faust's assignor topic are the administrator's to make (`accord
security apply`); the worker creates none.
"""

from __future__ import annotations

import re
import time

import requests

from accord.core.credentials import CredentialError
from accord.core.errors import InfrastructureError
from accord.core.kafka import admin_client
from accord.core.logging import get_logger
from accord.core.policy import opa_session
from accord.core.settings import Settings
from accord.core.topics import (
    DATASET_RECORDS,
    HUB_COMPACTED_TOPICS,
    HUB_REVIEW_TOPICS,
    HUB_STAGE_TOPICS,
    WORKER_TABLES,
    Topics,
    is_org_id,
)

log = get_logger("accord.worker")


def served_parties(settings: Settings) -> set[str] | None:
    """Providers and recipients named by the agreements OPA serves; None if OPA cannot say."""
    try:
        response = opa_session(settings).get(f"{settings.opa_url}/v1/data/agreements", timeout=5)
        response.raise_for_status()
        agreements = response.json().get("result") or {}
    except (requests.RequestException, ValueError, CredentialError, AttributeError):
        log.warning("agreements_unreadable", opa_url=settings.opa_url)
        return None
    parties = set()
    for agreement in agreements.values() if isinstance(agreements, dict) else ():
        if isinstance(agreement, dict):
            parties.update(agreement.get("providers") or ())
            parties.update(
                r.get("org") for r in agreement.get("recipients") or () if isinstance(r, dict)
            )
    return {org for org in parties if isinstance(org, str) and is_org_id(org)}


def agreement_parties(settings: Settings) -> set[str]:
    """Providers and recipients named by the agreements OPA serves (empty if OPA cannot say)."""
    return served_parties(settings) or set()


def registered_partners(settings: Settings) -> set[str]:
    """Partners with a registration file under partners/ (e.g. third-sector groups)."""
    folder = settings.home / "partners"
    return {path.stem for path in folder.glob("*.yaml") if is_org_id(path.stem)}


def registered_orgs(settings: Settings) -> set[str]:
    """The organisations whose partner topics the hub reads: every party to an agreement
    OPA serves and every partner with a registration file."""
    return agreement_parties(settings) | registered_partners(settings)


def sort_partner_topics(
    names: set[str] | list[str], registered: set[str], topics: Topics
) -> tuple[set[str], set[str]]:
    """(topics of registered organisations, topics of organisations no one registered)
    among partner topic names. An unknown organisation's topic (a mistyped id, a partner
    not yet under any agreement) is never read: what it holds would otherwise be matched
    against real people's cases."""
    known, unknown = set(), set()
    for name in names:
        try:
            org, _ = topics.parse_partner(name)
        except ValueError:
            unknown.add(name)
            continue
        (known if org in registered else unknown).add(name)
    return known, unknown


def partner_topics(settings: Settings, parties: set[str] | None = None) -> list[str]:
    """The partner topics to consume at start-up: every dataset of every registered
    organisation (`registered_orgs`), which the hub creates, plus their other existing
    partner topics (another version). Other organisations' topics are reported, not read.

    The administrator creates every registered partner's topics (`accord security
    apply`); the worker may not create topics. faust's pattern subscriptions do not
    subscribe in this version, so the list is explicit; `subscribe_new_partner_topics`
    adds partner topics created later.
    """
    topics = Topics(settings)
    parties = registered_orgs(settings) if parties is None else parties
    names = {topics.partner(org, dataset) for org in parties for dataset in DATASET_RECORDS}
    existing = set(existing_partner_topics(settings))
    missing = sorted(names - existing)
    if missing:
        log.warning("partner_topics_missing", topics=len(missing), first=missing[0])
    known, unknown = sort_partner_topics(existing, parties, topics)
    for name in sorted(unknown):
        log.warning("unknown_partner_topic", topic=name)
    return sorted(known)


def existing_partner_topics(settings: Settings) -> list[str]:
    topics = Topics(settings)
    patterns = [re.compile(topics.partner_pattern(dataset)) for dataset in DATASET_RECORDS]
    admin = admin_client(settings)
    try:
        return sorted(t for t in admin.list_topics() if any(p.match(t) for p in patterns))
    finally:
        admin.close()


def require_topics(settings: Settings) -> None:
    """Stop with one clear line when the administrator has not made the worker's topics."""
    topics = Topics(settings)
    needed = [
        *(topics.internal(n) for n in (*HUB_STAGE_TOPICS, *HUB_COMPACTED_TOPICS)),
        *(topics.internal(n) for n in HUB_REVIEW_TOPICS),
        topics.audit,
        topics.quarantine,
        *(Topics.changelog(settings.worker_group, name) for name in WORKER_TABLES),
        Topics.assignor(settings.worker_group),
    ]
    admin = admin_client(settings)
    deadline = time.monotonic() + 30  # topics just made take a moment to be everywhere
    try:
        while missing := sorted(set(needed) - set(admin.list_topics())):
            if time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        admin.close()
    if missing:
        raise InfrastructureError(
            f"{len(missing)} of the worker's topics do not exist (e.g. {missing[0]}): the "
            "administrator creates them with `accord security apply`"
        )


def registered_partner_topics(settings: Settings) -> list[str]:
    """Existing partner topics of registered organisations: the ones workers read."""
    known, _ = sort_partner_topics(
        existing_partner_topics(settings), registered_orgs(settings), Topics(settings)
    )
    return sorted(known)


def stage_topics(settings: Settings) -> list[str]:
    """The worker's own stage topics, in the order events flow through them."""
    return Topics(settings).stages()


def consumed_topics(settings: Settings) -> list[str]:
    """Every topic a worker reads: registered organisations' partner topics, its stage
    topics and the review decisions. A group with no lag on all of them has decided
    everything published so far."""
    reviews = [Topics(settings).internal(n) for n in HUB_REVIEW_TOPICS]
    return registered_partner_topics(settings) + stage_topics(settings) + reviews
