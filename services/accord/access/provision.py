"""Apply the access model to a cluster, as the administrator: principals, topics, ACLs.

`apply(settings)` is idempotent and is what `accord security apply`, `accord stack up`,
`accord partner add|rotate|revoke`, the demo, the bench and the tests' fixtures run:

1. every principal of the registry (the hub's services and each organisation) gets a
   SCRAM-SHA-512 credential on the broker (its secret from its credentials file, made
   if there is none);
2. every topic the hub uses is created by the administrator, since no other principal
   may create topics: the worker's stage topics and changelogs, the audit (kept for
   `ACCORD_AUDIT_RETENTION_MS`, default forever), the quarantine, each organisation's
   partner topics and rejects, and each recipient's list with its agreements' retention;
3. the ACLs of `accord.access.acls` are created where missing, and grants in this
   deployment's namespace that the registry no longer gives are removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.access import acls
from accord.access.registry import registered_organisations
from accord.core import credentials as principals
from accord.core.credentials import Credential, ensure_credential, write_private
from accord.core.errors import InfrastructureError
from accord.core.kafka import (
    COMPACTED,
    confluent_admin,
    connection,
    each_broker,
    metadata_request,
    replicated,
    topic_replication,
    topics_not_ready,
)
from accord.core.logging import get_logger
from accord.core.settings import Settings
from accord.core.topics import (
    DATASET_RECORDS,
    HUB_COMPACTED_TOPICS,
    HUB_REVIEW_TOPICS,
    HUB_STAGE_TOPICS,
    WORKER_TABLES,
    Topics,
)
from accord.pipeline.retention import agreements_from_dir, share_topic_configs
from accord.registry.users import provision_organisations

log = get_logger("accord.access")
Report = Callable[[str], None]
SCRAM_ITERATIONS = 8192


@dataclass
class Applied:
    principals: int = 0
    credentials_created: list[str] = field(default_factory=list)
    topics: int = 0
    grants: int = 0
    grants_added: int = 0
    grants_removed: int = 0


def revoked_file(settings: Settings) -> Path:
    return settings.state_dir / "access" / "revoked.json"


def revoked(settings: Settings) -> set[str]:
    """Organisations whose access was revoked: `apply` gives them nothing until `accord
    partner add` restores them, even while an agreement still names them."""
    try:
        return set(json.loads(revoked_file(settings).read_text()))
    except FileNotFoundError:
        return set()


def set_revoked(settings: Settings, org: str, is_revoked: bool) -> None:
    orgs = revoked(settings)
    orgs = orgs | {org} if is_revoked else orgs - {org}
    write_private(revoked_file(settings), json.dumps(sorted(orgs)) + "\n")


def active_organisations(settings: Settings) -> list[str]:
    """The registry's organisations that may sign in."""
    gone = revoked(settings)
    return [org for org in registered_organisations(settings) if org not in gone]


def admin_connection(settings: Settings) -> Any:
    return connection(settings, principals.ADMIN)


# Topics holding a person's state (hub.cases, the worker's changelogs): a record that was
# superseded (a closed case's earlier, whole version) is compacted away within a day, not
# kept until its segment happens to roll (7 days by default). Applied when a topic is made.
PERSON_STATE: dict[str, str] = {**COMPACTED, "max.compaction.lag.ms": str(86_400_000)}


def wanted_topics(settings: Settings, orgs: Iterable[str]) -> dict[str, dict[str, str] | None]:
    """Every topic of one deployment, with its configuration (None: broker defaults)."""
    topics = Topics(settings)
    # The audit is append-only and kept as long as the law requires: deleted by age only
    # (never compacted: a later decision must not replace an earlier one), -1 forever.
    audit_retention = {"cleanup.policy": "delete", "retention.ms": str(settings.audit_retention_ms)}
    rejects = {"retention.ms": str(settings.rejects_retention_ms)}
    # Records on their way hold personal data: kept only as long as an outage may last.
    transit = {"retention.ms": str(settings.transit_retention_ms)}
    wanted: dict[str, dict[str, str] | None] = {
        **{topics.internal(n): dict(transit) for n in HUB_STAGE_TOPICS},
        **{topics.internal(n): dict(PERSON_STATE) for n in HUB_COMPACTED_TOPICS},
        topics.audit: audit_retention,
        # The review decisions are the record of every review: kept like the audit.
        **{topics.internal(n): dict(audit_retention) for n in HUB_REVIEW_TOPICS},
        topics.quarantine: rejects,
        **{topics.changelog(settings.worker_group, t): dict(PERSON_STATE) for t in WORKER_TABLES},
    }
    wanted.update(share_topic_configs(topics, agreements_from_dir(settings.policies_dir)))
    return wanted


def partner_topic_names(settings: Settings, orgs: Iterable[str]) -> list[str]:
    topics = Topics(settings)
    return sorted(topics.partner(org, dataset) for org in orgs for dataset in DATASET_RECORDS)


def leader_topic(settings: Settings) -> str:
    """faust's assignor topic (one partition), which the worker may not create itself."""
    return Topics.assignor(settings.worker_group)


def all_topics(settings: Settings, orgs: list[str]) -> dict[str, tuple[int, dict[str, str]]]:
    """Topic -> (partitions, configuration) for everything one deployment uses."""
    topics: dict[str, tuple[int, dict[str, str]]] = {
        name: (settings.topic_partitions, config or {})
        for name, config in wanted_topics(settings, orgs).items()
    }
    transit = {"retention.ms": str(settings.transit_retention_ms)}
    for name in partner_topic_names(settings, orgs):
        topics[name] = (settings.partner_topic_partitions, transit)
    rejects = {"retention.ms": str(settings.rejects_retention_ms)}
    for org in orgs:  # little traffic, read by one organisation: one partition
        topics[Topics(settings).rejects(org)] = (1, rejects)
    topics[leader_topic(settings)] = (1, {})
    # The schema registry's store: one partition, so its records keep their order.
    topics[settings.schemas_topic] = (1, dict(COMPACTED))
    return topics


def ensure_all_topics(
    admin: Any, settings: Settings, orgs: list[str], timeout_s: float = 30.0
) -> list[str]:
    """Create, in one request, every topic of the deployment that does not exist yet;
    the names created. Created means the controller committed them: each broker shows
    them once it has applied the metadata log that far (`wait_until_applied`)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    wanted = all_topics(settings, orgs)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise InfrastructureError(f"listing topics: {exc}") from exc
    existing = set(metadata.topics)
    # min(3, brokers) replicas, two in sync from three (accord.core.kafka.replication).
    replicas, min_isr = topic_replication(settings, len(metadata.brokers))
    new = [
        NewTopic(name, partitions, replicas, config=replicated(config, min_isr))
        for name, (partitions, config) in sorted(wanted.items())
        if name not in existing
    ]
    if new:
        futures = admin.create_topics(new, operation_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise InfrastructureError(f"creating {name}: {exc}") from exc
    return [t.topic for t in new]


def organisation_topics(settings: Settings, org: str) -> list[str]:
    """The topics an organisation writes and reads: its partner topics and its rejects."""
    return [*partner_topic_names(settings, [org]), Topics(settings).rejects(org)]


def not_applied(
    settings: Settings,
    topics: Iterable[str] = (),
    grants: Iterable[acls.Grant] = (),
    removed: Iterable[acls.Grant] = (),
    partners: Iterable[str] = (),
) -> list[str]:
    """What some broker has not applied yet, each broker asked itself (never whichever the
    client picks): `topics` shown with a leader for every partition, `grants` described
    and `removed` no longer, and each of `partners` signing in with its current secret
    and seeing its own topics."""
    topics, wanted, gone = sorted(set(topics)), set(grants), set(removed)
    problems: list[str] = []
    conn = admin_connection(settings)
    try:
        if topics:
            for node, answer in each_broker(conn, metadata_request(topics)).items():
                problems += [
                    f"broker {node} does not show {t}" for t in topics_not_ready(answer, topics)
                ]
        if wanted or gone:
            for node, answer in each_broker(conn, describe_acls_request).items():
                described = described_grants(answer)
                problems += [
                    f"broker {node} lacks {g.describe()}" for g in sorted(wanted - described)
                ]
                problems += [
                    f"broker {node} still has {g.describe()}" for g in sorted(gone & described)
                ]
        for org in sorted(set(partners)):
            own = organisation_topics(settings, org)
            for node, answer in each_broker(
                connection(settings, org), metadata_request(own)
            ).items():
                problems += [
                    f"broker {node} does not let {org} see {t}"
                    for t in topics_not_ready(answer, own)
                ]
    except InfrastructureError as exc:  # e.g. a broker that does not know a new secret yet
        problems.append(str(exc))
    return problems


def wait_until_applied(
    settings: Settings,
    topics: Iterable[str] = (),
    grants: Iterable[acls.Grant] = (),
    removed: Iterable[acls.Grant] = (),
    partners: Iterable[str] = (),
    timeout_s: float = 120.0,
) -> float:
    """Until every broker has applied the topics, grants, removals and partner secrets
    just made (`not_applied` is empty); the seconds waited. The controller acknowledges a
    change once the KRaft quorum has committed it, and each broker applies the metadata
    log on its own, on a busy machine seconds later: a partner that published at once
    was refused by a broker that had not (TOPIC_AUTHORIZATION_FAILED, which librdkafka
    does not retry, or a topic its metadata did not show yet)."""
    topics, grants, removed, partners = list(topics), list(grants), list(removed), list(partners)
    began = time.monotonic()
    while problems := not_applied(settings, topics, grants, removed, partners):
        if time.monotonic() - began > timeout_s:
            raise InfrastructureError(
                f"not applied by every broker in {timeout_s:.0f}s ({len(problems)} left): "
                + "; ".join(problems[:3])
            )
        time.sleep(0.25)
    return time.monotonic() - began


# --- SCRAM credentials ---------------------------------------------------------------------


def _wait(futures: dict[Any, Any], what: str) -> None:
    from confluent_kafka import KafkaException

    for key, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            raise InfrastructureError(f"{what} {key}: {exc}") from exc


def scram_users(admin: Any) -> set[str]:
    """Principals that have a SCRAM credential on the broker."""
    try:
        described = admin.describe_user_scram_credentials().result()
    except Exception as exc:  # librdkafka raises KafkaException or returns per-user errors
        raise InfrastructureError(f"listing SCRAM credentials: {exc}") from exc
    return set(described)


def set_scram(admin: Any, credentials: Iterable[Credential]) -> None:
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts = [
        UserScramCredentialUpsertion(c.principal, info, c.secret.get_secret_value().encode())
        for c in credentials
    ]
    if upserts:
        _wait(admin.alter_user_scram_credentials(upserts), "setting SCRAM for")


def delete_scram(admin: Any, principal: str) -> None:
    from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion

    if principal in scram_users(admin):
        deletion = UserScramCredentialDeletion(principal, ScramMechanism.SCRAM_SHA_512)
        _wait(admin.alter_user_scram_credentials([deletion]), "deleting SCRAM of")


# --- ACLs ----------------------------------------------------------------------------------


def _binding(grant: acls.Grant) -> Any:
    from confluent_kafka.admin import AclBinding, AclPermissionType

    return AclBinding(
        grant.resource_type,
        grant.name,
        grant.pattern,
        f"User:{grant.principal}",
        "*",
        grant.operation,
        AclPermissionType.ALLOW,
    )


def broker_grants(admin: Any) -> set[acls.Grant]:
    """Every ALLOW ACL on the broker, as grants."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    query = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        found = admin.describe_acls(query).result()
    except Exception as exc:
        raise InfrastructureError(f"listing ACLs: {exc}") from exc
    return {
        acls.Grant(
            b.principal.removeprefix("User:"),
            b.restype.name,
            b.name,
            b.resource_pattern_type.name,
            b.operation.name,
        )
        for b in found
        if b.permission_type.name == "ALLOW"
    }


def describe_acls_request() -> Any:
    """A DescribeAcls request for every ACL (kafka-python's, for `each_broker`): a broker
    answers it from its own authorizer, so it lists the grants that broker enforces."""
    from kafka.protocol.admin import DescribeAclsRequest

    any_ = 1  # ANY, for the resource type, the pattern type, the operation and permission
    return DescribeAclsRequest(
        resource_type_filter=any_,
        resource_name_filter=None,
        pattern_type_filter=any_,
        principal_filter=None,
        host_filter=None,
        operation=any_,
        permission_type=any_,
    )


def described_grants(response: Any) -> set[acls.Grant]:
    """The ALLOW grants of a DescribeAcls response (named as `broker_grants` names them:
    the protocol's codes are librdkafka's enum values)."""
    from confluent_kafka.admin import (
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    if response.error_code != 0:
        raise InfrastructureError(f"describing ACLs: {response.error_message}")
    return {
        acls.Grant(
            acl.principal.removeprefix("User:"),
            ResourceType(resource.resource_type).name,
            resource.resource_name,
            ResourcePatternType(resource.pattern_type).name,
            AclOperation(acl.operation).name,
        )
        for resource in response.resources
        for acl in resource.acls
        if AclPermissionType(acl.permission_type) == AclPermissionType.ALLOW
    }


def add_grants(admin: Any, grants: Iterable[acls.Grant]) -> int:
    bindings = [_binding(g) for g in grants]
    if bindings:
        _wait(admin.create_acls(bindings), "creating ACL")
    return len(bindings)


def remove_grants(admin: Any, grants: Iterable[acls.Grant]) -> int:
    from confluent_kafka.admin import AclBindingFilter, AclPermissionType

    filters = [
        AclBindingFilter(
            g.resource_type,
            g.name,
            g.pattern,
            f"User:{g.principal}",
            "*",
            g.operation,
            AclPermissionType.ALLOW,
        )
        for g in grants
    ]
    if filters:
        _wait(admin.delete_acls(filters), "deleting ACL")
    return len(filters)


# --- the whole model -----------------------------------------------------------------------


def deployment_grants(settings: Settings, orgs: Iterable[str]) -> list[acls.Grant]:
    return acls.derive(orgs, Topics(settings), settings.worker_group, settings.schemas_topic)


def apply(
    settings: Settings,
    report: Report | None = None,
    also: Iterable[str] = (),
    renewed: Iterable[str] = (),
) -> Applied:
    """Bring the cluster into line with the registry and the agreements (idempotent), and
    return once every broker has applied it. `also` names organisations registered
    elsewhere (a copy of the policies a test or an operator serves from another
    directory); `renewed` those whose secret was just set (`accord partner add`)."""
    say = report or (lambda _line: None)
    conn = admin_connection(settings)
    # One handle for every call: librdkafka fails its futures once the handle is collected.
    admin = confluent_admin(conn)
    orgs = sorted(set(active_organisations(settings)) | set(also))
    result = Applied()

    everyone = [*principals.SERVICE_PRINCIPALS, *orgs]
    result.principals = len(everyone)
    known = scram_users(admin)
    missing = []
    for principal in everyone:
        existed = principals.credential_file(settings, principal).exists()
        credential = ensure_credential(settings, principal)
        if not existed:
            result.credentials_created.append(principal)
        if principal not in known or not existed:
            missing.append(credential)
    set_scram(admin, [c for c in missing if c.principal != principals.ADMIN])
    # The same name and secret sign in to the schema registry.
    provision_organisations(settings, everyone)

    # ACLs before topics: the broker applies metadata in order, and hundreds of new
    # partitions ahead of them would hold the grants back for seconds.
    wanted = deployment_grants(settings, orgs)
    found = broker_grants(admin)
    roots = acls.namespace(orgs, Topics(settings), settings.worker_group, settings.schemas_topic)
    result.grants = len(wanted)
    added = [g for g in wanted if g not in found]
    removed = acls.stale(found, wanted, roots)
    result.grants_added = add_grants(admin, added)
    result.grants_removed = remove_grants(admin, removed)

    created = ensure_all_topics(admin, settings, orgs)
    result.topics = len(all_topics(settings, orgs))
    # Every broker applies the new secrets, grants and topics from the metadata log on its
    # own, in the log's order: wait until each one describes the new grants (and no
    # longer the removed ones) and shows the new topics with their leaders. A secret set
    # here is earlier in the log than those, so applied with them; one followed by no
    # other change is proved by its organisation signing in to each broker, as is the
    # organisation of `accord partner add` (it sees its topics there).
    secrets = {c.principal for c in missing} & set(orgs)
    later = bool(created or added or removed)
    partners = sorted((set(renewed) & set(orgs)) | (set() if later else secrets))
    if later or partners:
        topics = {*created, *(t for org in partners for t in organisation_topics(settings, org))}
        waited = wait_until_applied(settings, topics, added, removed, partners)
        log.info("access_applied_on_every_broker", seconds=round(waited, 2), partners=partners)
    log.info(
        "access_applied",
        principals=result.principals,
        topics=result.topics,
        grants=result.grants,
        added=result.grants_added,
        removed=result.grants_removed,
    )
    say(
        f"access: {result.principals} principals, {result.topics} topics, {result.grants} "
        f"grants ({result.grants_added} added, {result.grants_removed} removed)"
    )
    return result


def remove_deployment(settings: Settings) -> int:
    """Remove the grants of a prefixed deployment (a test's): only those under its own
    prefix or worker group, never grants it shares with other deployments."""
    if not settings.topic_prefix:
        raise ValueError("refusing to remove the grants of the unprefixed deployment")
    admin = confluent_admin(admin_connection(settings))
    own = (settings.topic_prefix, settings.worker_group)
    grants = deployment_grants(settings, active_organisations(settings))
    return remove_grants(admin, [g for g in grants if g.name.startswith(own)])
