"""The access model as data: grants derived from the registry, the matrix's expectations,
stale grants, credentials files and the one place Kafka clients get their settings."""

from __future__ import annotations

import json
import stat

import pytest
from pydantic import SecretStr

from accord.access import acls
from accord.access.matrix import expected
from accord.core import credentials
from accord.core.credentials import Credential, CredentialError, held_credential
from accord.core.kafka import KafkaConnection, connection
from accord.core.settings import Settings
from accord.core.topics import Topics
from accord.stack.tls import ensure_tls

ORGS = ["nhs-lothian", "city-of-edinburgh", "east-lothian"]


@pytest.fixture
def grants() -> list[acls.Grant]:
    topics = Topics(Settings(topic_prefix="t1."))
    return acls.derive(ORGS, topics, "accord-test-1", "_schemas")


@pytest.mark.parametrize(
    ("principal", "topic", "operation", "allowed"),
    [
        ("nhs-lothian", "t1.partner.nhs-lothian.shielding-list.v1", "produce", True),
        ("nhs-lothian", "t1.partner.city-of-edinburgh.support-request.v1", "produce", False),
        ("nhs-lothian", "t1.partner.nhs-lothian.shielding-list.v1", "consume", False),
        ("city-of-edinburgh", "t1.share.city-of-edinburgh.support-list", "consume", True),
        ("city-of-edinburgh", "t1.share.east-lothian.support-list", "consume", False),
        ("city-of-edinburgh", "t1.share.city-of-edinburgh.support-list", "produce", False),
        ("city-of-edinburgh", "t1.rejects.city-of-edinburgh", "consume", True),
        ("city-of-edinburgh", "t1.rejects.nhs-lothian", "consume", False),
        ("city-of-edinburgh", "t1.hub.audit.decisions", "consume", False),
        ("accord-worker", "t1.partner.nhs-lothian.shielding-list.v1", "consume", True),
        ("accord-worker", "t1.share.city-of-edinburgh.support-list", "produce", True),
        ("accord-worker", "t1.share.city-of-edinburgh.support-list", "consume", False),
        ("accord-worker", "t1.hub.audit.decisions", "produce", True),
        ("accord-worker", "t1.hub.audit.decisions", "consume", False),
        ("accord-worker", "accord-test-1-cases-changelog", "consume", True),
        ("accord-worker", "t1.share.city-of-edinburgh.support-list", "create", False),
        ("accord-worker", "t1.hub.cases", "delete", False),
        ("accord-audit", "t1.hub.audit.decisions", "consume", True),
        ("accord-audit", "t1.hub.audit.decisions", "produce", False),
        ("accord-gateway", "t1.partner.nhs-lothian.shielding-list.v1", "produce", True),
        ("accord-gateway", "t1.share.city-of-edinburgh.support-list", "consume", False),
        ("accord-console", "t1.share.east-lothian.support-list", "consume", True),
        ("accord-console", "t1.partner.nhs-lothian.shielding-list.v1", "consume", False),
        ("accord-registry", "_schemas", "produce", True),
        ("accord-registry", "t1.hub.cases", "consume", False),
        ("admin", "t1.hub.audit.decisions", "delete", True),
        ("admin", "t1.hub.audit.decisions", "delete-records", True),
        ("accord-worker", "t1.hub.audit.decisions", "alter-configs", False),
        ("accord-worker", "t1.hub.audit.decisions", "delete-records", False),
        ("accord-audit", "t1.hub.audit.decisions", "delete-records", False),
        ("accord-worker", "t1.hub.audit-chain", "consume", True),
        ("nobody", "t1.share.city-of-edinburgh.support-list", "describe", False),
        ("accord-reviewer", "t1.hub.match.review", "consume", True),
        ("accord-reviewer", "t1.hub.match.review", "produce", False),
        ("accord-reviewer", "t1.hub.match.decisions", "produce", True),
        ("accord-reviewer", "t1.hub.match.decisions", "consume", True),
        ("accord-reviewer", "t1.hub.cases", "consume", False),
        ("accord-reviewer", "t1.hub.audit.decisions", "consume", False),
        ("accord-reviewer", "t1.share.city-of-edinburgh.support-list", "consume", False),
        ("accord-reviewer", "t1.hub.match.decisions", "delete-records", False),
        ("accord-worker", "t1.hub.match.decisions", "consume", True),
        ("accord-worker", "t1.hub.match.decisions", "produce", False),
        ("accord-audit", "t1.hub.match.decisions", "consume", True),
        ("city-of-edinburgh", "t1.hub.match.review", "consume", False),
    ],
)
def test_the_model_promises_each_principal_only_its_own(
    grants: list[acls.Grant], principal: str, topic: str, operation: str, allowed: bool
) -> None:
    assert expected(grants, principal, topic, operation) is allowed


def test_grants_are_prefixed_by_the_deployment_and_an_organisation_gets_no_wildcard() -> None:
    topics = Topics(Settings(topic_prefix="t1."))
    org = acls.organisation_grants("nhs-lothian", topics)
    assert {g.name for g in org} == {
        "t1.partner.nhs-lothian.",
        "t1.share.nhs-lothian.",
        "t1.rejects.nhs-lothian",
        "t1.nhs-lothian.",
    }
    assert all(g.operation in {acls.READ, acls.WRITE, acls.DESCRIBE} for g in org)


def test_stale_grants_are_only_those_of_this_deployment() -> None:
    topics = Topics(Settings(topic_prefix=""))
    wanted = acls.derive(["nhs-lothian"], topics, "accord-worker", "_schemas")
    revoked = acls.Grant("fife", acls.TOPIC, "partner.fife.", acls.PREFIXED, acls.WRITE)
    other_tenant = acls.Grant("fife", acls.TOPIC, "t9.partner.fife.", acls.PREFIXED, acls.WRITE)
    roots = acls.namespace(["nhs-lothian"], topics, "accord-worker", "_schemas")
    assert acls.stale([*wanted, revoked, other_tenant], wanted, roots) == [revoked]


def test_credentials_files_are_private_and_never_print_their_secret(tmp_path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    made = credentials.create_credential(settings, "nhs-lothian")
    path = credentials.credential_file(settings, "nhs-lothian")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["principal"] == "nhs-lothian"
    assert made.secret.get_secret_value() not in repr(made)
    assert len(made.secret.get_secret_value()) >= 32


def test_private_dir_leaves_an_existing_directory_alone(tmp_path) -> None:
    tmp_path.chmod(0o755)
    credentials.private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700


def test_a_process_holds_the_credential_it_was_given_or_its_own_file(tmp_path) -> None:
    settings = Settings(state_dir=tmp_path)
    with pytest.raises(CredentialError, match="no credentials held for nhs-lothian"):
        held_credential(settings, "nhs-lothian")
    given = Settings(state_dir=tmp_path, principal="fife", secret="s" * 40)
    assert held_credential(given, "nhs-lothian").principal == "fife"
    with pytest.raises(CredentialError, match="no Kafka principal chosen"):
        connection(Settings(state_dir=tmp_path))


def test_every_client_library_gets_sasl_ssl_with_the_ca(tmp_path) -> None:
    ca = ensure_tls(Settings(state_dir=tmp_path)).ca
    conn = KafkaConnection("127.0.0.1:1", Credential("fife", SecretStr("x" * 40)), ca)
    assert conn.confluent()["security.protocol"] == "SASL_SSL"
    assert conn.confluent()["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conn.confluent()["ssl.ca.location"] == str(ca)
    for config in (conn.kafka_python(), conn.aiokafka()):
        assert config["security_protocol"] == "SASL_SSL"
        assert config["sasl_plain_username"] == "fife"
        assert config["ssl_context"].check_hostname
    with pytest.raises(CredentialError, match="no CA bundle"):
        KafkaConnection("127.0.0.1:1", conn.credential, tmp_path / "absent.pem").aiokafka()


def test_the_worker_alone_gets_transactional_ids_and_only_its_audit_ones() -> None:
    grants = acls.derive(ORGS, Topics(Settings(topic_prefix="t1.")), "accord-test-1", "_schemas")
    ids = [g for g in grants if g.resource_type == acls.TRANSACTIONAL_ID]
    assert {(g.principal, g.name, g.pattern, g.operation) for g in ids} == {
        ("accord-worker", "accord-test-1-audit-", acls.PREFIXED, acls.WRITE),
        ("accord-worker", "accord-test-1-audit-", acls.PREFIXED, acls.DESCRIBE),
    }
    assert not [g for g in grants if g.resource_type == acls.CLUSTER]


def test_the_audit_is_kept_by_age_only_for_the_configured_retention() -> None:
    from accord.access.provision import wanted_topics

    for retention in (-1, 220_752_000_000):
        settings = Settings(topic_prefix="t1.", audit_retention_ms=retention)
        audit = wanted_topics(settings, ORGS)[Topics(settings).audit]
        assert audit == {"cleanup.policy": "delete", "retention.ms": str(retention)}
    assert Settings().audit_retention_ms == -1
