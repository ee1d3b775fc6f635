"""Who may do what on Kafka, as data: grants derived from the partner registry.

Modelled on Strimzi's KafkaUser: a principal and its ACLs (resource type, name, pattern
type literal or prefix, operations). Everything here is a pure function of the partner
registry and the deployment's names (topic prefix, worker group), so the same grants are
applied, checked and printed (`accord security matrix`) from one definition.

- An organisation WRITEs only `partner.<org>.*`, READs only `share.<org>.*`, reads and
  writes its own `rejects.<org>` (its rejected rows, with reasons), and joins consumer
  groups named `<org>.*`.
- The worker READs partner topics, WRITEs `share.*`, its stage topics, the quarantine,
  everyone's rejects and its changelogs; it WRITEs the audit (in transactions, under
  its own transactional ids `<worker group>-audit-*`) but may not read it; it keeps the
  audit chain's heads in its own `hub.audit-chain`.
- The audit principal (the audit index and the IG tools) alone READs the audit, and
  READs the review decisions (`hub.match.decisions`).
- The reviewer READs the review queue (`hub.match.review`) and READs and WRITEs the
  decisions (`hub.match.decisions`), which the worker READs; nothing else.
- The gateway WRITEs partner topics and rejects on partners' behalf (it stamps the
  organisation its token authenticated); the console READs the lists; the registry
  reads and writes `_schemas`.
- Nobody but the administrator (the only super user) creates, deletes or alters topics,
  or touches ACLs and credentials.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from accord.core import credentials as principals
from accord.core.topics import (
    HUB_COMPACTED_TOPICS,
    HUB_STAGE_TOPICS,
    MATCH_DECISIONS,
    MATCH_REVIEW,
    Topics,
)

TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID = "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"
LITERAL, PREFIXED = "LITERAL", "PREFIXED"
READ, WRITE, DESCRIBE = "READ", "WRITE", "DESCRIBE"
CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW `operation` on a resource to `principal` (a name, without `User:`)."""

    principal: str
    resource_type: str
    name: str
    pattern: str
    operation: str

    def describe(self) -> str:
        star = "*" if self.pattern == PREFIXED else ""
        return f"{self.principal}: {self.operation} {self.resource_type.lower()} {self.name}{star}"


def _grants(
    principal: str, resource_type: str, name: str, pattern: str, operations: Iterable[str]
) -> list[Grant]:
    return [Grant(principal, resource_type, name, pattern, op) for op in operations]


def organisation_grants(org: str, topics: Topics) -> list[Grant]:
    p = topics.prefix
    return [
        *_grants(org, TOPIC, f"{p}partner.{org}.", PREFIXED, (WRITE, DESCRIBE)),
        *_grants(org, TOPIC, f"{p}share.{org}.", PREFIXED, (READ, DESCRIBE)),
        *_grants(org, TOPIC, topics.rejects(org), LITERAL, (READ, WRITE, DESCRIBE)),
        *_grants(org, GROUP, f"{p}{org}.", PREFIXED, (READ,)),
    ]


def worker_grants(topics: Topics, worker_group: str) -> list[Grant]:
    p, w = topics.prefix, principals.WORKER
    own = [topics.internal(n) for n in (*HUB_STAGE_TOPICS, *HUB_COMPACTED_TOPICS)]
    return [
        *_grants(w, TOPIC, f"{p}partner.", PREFIXED, (READ, DESCRIBE)),
        *_grants(w, TOPIC, f"{p}share.", PREFIXED, (WRITE, DESCRIBE)),
        *_grants(w, TOPIC, f"{p}rejects.", PREFIXED, (WRITE, DESCRIBE)),
        *[g for name in own for g in _grants(w, TOPIC, name, LITERAL, (READ, WRITE, DESCRIBE))],
        *_grants(w, TOPIC, topics.quarantine, LITERAL, (WRITE, DESCRIBE)),
        *_grants(w, TOPIC, topics.internal(MATCH_DECISIONS), LITERAL, (READ, DESCRIBE)),
        *_grants(w, TOPIC, topics.audit, LITERAL, (WRITE, DESCRIBE)),
        # The audit is written in transactions, one transactional id per audit partition
        # (accord.worker.auditlog); idempotent writes need no more than WRITE on the topic.
        *_grants(w, TRANSACTIONAL_ID, f"{worker_group}-audit-", PREFIXED, (WRITE, DESCRIBE)),
        # The tables' changelogs and faust's own topics are named after the group.
        *_grants(w, TOPIC, f"{worker_group}-", PREFIXED, (READ, WRITE, DESCRIBE)),
        *_grants(w, GROUP, worker_group, PREFIXED, (READ,)),
        # Schemas are read through the registry, but the registry's topic is not the
        # worker's to read.
    ]


def service_grants(topics: Topics, schemas_topic: str) -> list[Grant]:
    p = topics.prefix
    return [
        *_grants(principals.REGISTRY, TOPIC, schemas_topic, LITERAL, (READ, WRITE, DESCRIBE)),
        *_grants(principals.REGISTRY, GROUP, principals.REGISTRY, PREFIXED, (READ,)),
        *_grants(principals.GATEWAY, TOPIC, f"{p}partner.", PREFIXED, (WRITE, DESCRIBE)),
        *_grants(principals.GATEWAY, TOPIC, f"{p}rejects.", PREFIXED, (WRITE, DESCRIBE)),
        *_grants(principals.CONSOLE, TOPIC, f"{p}share.", PREFIXED, (READ, DESCRIBE)),
        *_grants(principals.CONSOLE, GROUP, f"{p}{principals.CONSOLE}", PREFIXED, (READ,)),
        *_grants(principals.AUDIT, TOPIC, topics.audit, LITERAL, (READ, DESCRIBE)),
        *_grants(principals.AUDIT, GROUP, principals.AUDIT, PREFIXED, (READ,)),
        *_grants(
            principals.AUDIT, TOPIC, topics.internal(MATCH_DECISIONS), LITERAL, (READ, DESCRIBE)
        ),
        *reviewer_grants(topics),
    ]


def reviewer_grants(topics: Topics) -> list[Grant]:
    """The review queue to read, decisions to write: who may review is who holds this
    principal's credential (an IG officer's team; see docs/ig-officers.md)."""
    r = principals.REVIEWER
    return [
        *_grants(r, TOPIC, topics.internal(MATCH_REVIEW), LITERAL, (READ, DESCRIBE)),
        # Decisions are read back to find a merge to split and to show what was decided.
        *_grants(r, TOPIC, topics.internal(MATCH_DECISIONS), LITERAL, (READ, WRITE, DESCRIBE)),
        *_grants(r, GROUP, f"{topics.prefix}{r}", PREFIXED, (READ,)),
    ]


def derive(
    orgs: Iterable[str], topics: Topics, worker_group: str, schemas_topic: str
) -> list[Grant]:
    """Every grant of one deployment (one topic prefix), sorted and without repeats."""
    grants = set(worker_grants(topics, worker_group)) | set(service_grants(topics, schemas_topic))
    for org in orgs:
        grants.update(organisation_grants(org, topics))
    return sorted(grants)


def namespace(
    orgs: Iterable[str], topics: Topics, worker_group: str, schemas_topic: str
) -> tuple[str, ...]:
    """The beginnings of every resource name this deployment's grants cover. A grant on
    the broker whose resource starts with none of them belongs to another deployment (a
    test's prefix, another tenant) and is never removed by this one."""
    p = topics.prefix
    return (
        f"{p}partner.",
        f"{p}share.",
        f"{p}rejects.",
        f"{p}hub.",
        f"{worker_group}-",
        worker_group,
        schemas_topic,
        f"{p}{principals.CONSOLE}",
        f"{p}{principals.REVIEWER}",
        principals.AUDIT,
        principals.REGISTRY,
        *(f"{p}{org}." for org in orgs),
    )


def stale(found: Iterable[Grant], wanted: Iterable[Grant], roots: tuple[str, ...]) -> list[Grant]:
    """Grants on the broker, in this deployment's namespace, that the registry no longer
    wants (a revoked organisation's, or one the rules above stopped giving)."""
    keep = set(wanted)
    return sorted(g for g in found if g not in keep and g.name.startswith(roots))
