"""Unit tests for the Helm chart (deploy/k8s/accord) and `accord deploy render|check`.

The generated values come from the same functions as the local stack's access model, so
these compare them with it. The chart itself is rendered with helm (built by `accord
deploy check` on its first run, which `make test` calls) and every resource validated:
Kubernetes ones with kubernetes-validate, Strimzi ones with the stored CRD schemas.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from accord.access import acls
from accord.access import deploy as chart
from accord.access.provision import all_topics, deployment_grants, registered_organisations
from accord.core.credentials import ADMIN
from accord.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "deploy" / "k8s" / "accord" / "generated-values.yaml"
RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A state dir of its own: no organisation revoked there.
    return Settings(_env_file=None, state_dir=tmp_path)


def test_generated_values_are_current(settings: Settings) -> None:
    """partners/ or policies/ changed without `accord deploy render`: this fails."""
    assert yaml.safe_load(GENERATED.read_text()) == chart.render_values(settings)


def test_values_carry_every_topic_and_grant_and_no_secret(settings: Settings) -> None:
    values = chart.render_values(settings)["generated"]
    orgs = registered_organisations(settings)
    wanted = all_topics(settings, orgs)
    assert {t["topicName"] for t in values["topics"]} == set(wanted)
    for topic in values["topics"]:
        assert RFC1123.match(topic["resource"]) and len(topic["resource"]) <= 63
        assert topic["partitions"] == wanted[topic["topicName"]][0]
        assert topic["replicas"] == 3 and topic["config"]["min.insync.replicas"] == "2"
    assert len({t["resource"] for t in values["topics"]}) == len(values["topics"])
    users = {u["name"]: u for u in values["users"]}
    assert ADMIN not in users  # the super user, without ACLs
    grants = [g for g in deployment_grants(settings, orgs) if g.principal != ADMIN]
    for grant in grants:
        acl = next(
            a
            for a in users[grant.principal]["acls"]
            if a["resource"]["type"] == chart.RESOURCE_TYPES[grant.resource_type]
            and a["resource"].get("name") == grant.name
        )
        assert chart.OPERATIONS[grant.operation] in acl["operations"]
        assert acl["resource"]["patternType"] == chart.PATTERNS[grant.pattern]
    text = GENERATED.read_text().lower()
    assert "password:" not in text and "secret:" not in text


def test_acls_group_operations_per_resource() -> None:
    grants = [
        acls.Grant("org-a", acls.TOPIC, "partner.org-a.", acls.PREFIXED, "WRITE"),
        acls.Grant("org-a", acls.TOPIC, "partner.org-a.", acls.PREFIXED, "DESCRIBE"),
        acls.Grant("org-a", acls.GROUP, "org-a.", acls.PREFIXED, "READ"),
    ]
    assert chart.user_acls(grants) == [
        {
            "resource": {"type": "group", "name": "org-a.", "patternType": "prefix"},
            "operations": ["Read"],
            "host": "*",
        },
        {
            "resource": {"type": "topic", "name": "partner.org-a.", "patternType": "prefix"},
            "operations": ["Describe", "Write"],
            "host": "*",
        },
    ]


@pytest.mark.parametrize(
    ("topic", "name"),
    [("hub.audit.decisions", "hub-audit-decisions"), ("_schemas", "schemas"), ("A_b", "a-b")],
)
def test_resource_names(topic: str, name: str) -> None:
    assert chart.resource_name(topic) == name
    assert len(chart.resource_name("x" * 300)) <= 63


def test_checker_finds_what_is_wrong(settings: Settings) -> None:
    strimzi = chart.strimzi_schemas(settings)
    assert set(strimzi) == {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
    bad_user = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {"name": "u"},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [{"resource": {"type": "topic", "name": "t"}, "operations": ["Eat"]}],
            },
        },
    }
    bare = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i", "colour": "red"}]},
            },
        },
    }
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {}}
    problems = chart.check_manifests([bad_user, bare, secret], strimzi)
    assert any("KafkaUser/u" in p and "Eat" in p for p in problems)
    assert any("Deployment/d" in p and "colour" in p for p in problems)  # strict
    assert any("Deployment/d" in p and "livenessProbe" in p for p in problems)
    assert any("Secret/s" in p for p in problems)


needs_helm = pytest.mark.skipif(
    not chart.helm_binary(Settings(_env_file=None)).exists(),
    reason="helm not built yet: `accord deploy check` (run by `make test`) builds it once",
)


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    settings = Settings(_env_file=None)  # ACCORD_CACHE_DIR: where helm was built
    text = chart.helm_template(chart.helm_binary(settings), chart.chart_dir(settings), [GENERATED])
    return [doc for doc in yaml.safe_load_all(text) if doc]


@needs_helm
def test_the_chart_renders_valid_resources(rendered: list[dict], settings: Settings) -> None:
    assert chart.check_manifests(rendered, chart.strimzi_schemas(settings)) == []
    kinds = {doc["kind"] for doc in rendered}
    assert {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds
    generated = yaml.safe_load(GENERATED.read_text())["generated"]
    users = [doc for doc in rendered if doc["kind"] == "KafkaUser"]
    assert len(users) == len(generated["users"])
    for user in users:
        ref = user["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
        assert ref["name"].endswith(user["metadata"]["name"])


@needs_helm
def test_opa_and_the_registry_admit_only_the_hub(rendered: list[dict]) -> None:
    policies = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "NetworkPolicy"}
    for target in ("opa", "registry"):
        policy = policies[f"accord-{target}-hub-only"]
        assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
            target
        )
        hub = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]
        components = next(e for e in hub if e["key"] == "app.kubernetes.io/component")
        assert set(components["values"]) <= {"worker", "gateway", "console", "registry"}
        assert target not in components["values"]


@needs_helm
def test_worker_replicas_are_tied_to_partitions(
    rendered: list[dict], tmp_path: Path, settings: Settings
) -> None:
    worker = next(
        d
        for d in rendered
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "accord-worker"
    )
    partitions = yaml.safe_load(GENERATED.read_text())["generated"]["topicPartitions"]
    assert 1 <= worker["spec"]["replicas"] <= partitions
    too_many = tmp_path / "too-many.yaml"
    too_many.write_text(yaml.safe_dump({"worker": {"replicas": partitions + 1}}))
    with pytest.raises(Exception, match="exceeds the topics' partitions"):
        chart.helm_template(
            chart.helm_binary(settings), chart.chart_dir(settings), [GENERATED, too_many]
        )


@needs_helm
def test_the_console_holds_the_reviewers_credential_by_secret_reference(
    rendered: list[dict],
) -> None:
    # The review pages publish as accord-reviewer: its own secret, the one its KafkaUser
    # names, mounted read-only where ACCORD_CONSOLE_REVIEWER_SECRET_FILE points.
    console = next(
        d
        for d in rendered
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "accord-console"
    )
    pod = console["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ACCORD_PRINCIPAL"] == "accord-console"  # its own principal stays its own
    # It listens where its Service sends requests.
    [port] = [p["containerPort"] for p in container["ports"] if p["name"] == "https"]
    assert (env["ACCORD_CONSOLE_HOST"], env["ACCORD_CONSOLE_PORT"]) == ("0.0.0.0", str(port))
    secret_file = Path(env["ACCORD_CONSOLE_REVIEWER_SECRET_FILE"])
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(secret_file.parent)]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    reviewer = next(
        d
        for d in rendered
        if d["kind"] == "KafkaUser" and d["metadata"]["name"] == "accord-reviewer"
    )
    ref = reviewer["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
    assert volume["secret"]["secretName"] == ref["name"]
    assert volume["secret"]["items"] == [{"key": ref["key"], "path": secret_file.name}]
    assert volume["secret"]["defaultMode"] == 0o400
    assert not [d for d in rendered if d["kind"] == "Secret"]


def console_pod(rendered: list[dict]) -> tuple[dict, dict, dict[str, str | None]]:
    console = next(
        d
        for d in rendered
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "accord-console"
    )
    pod = console["spec"]["template"]["spec"]
    [container] = pod["containers"]
    return pod, container, {e["name"]: e.get("value") for e in container["env"]}


def mounted_from(pod: dict, container: dict, path: Path) -> tuple[dict, dict]:
    """(the mount holding `path`, its volume)."""
    [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return mount, volume


def kafka_user_secret(rendered: list[dict], principal: str) -> dict:
    user = next(
        d for d in rendered if d["kind"] == "KafkaUser" and d["metadata"]["name"] == principal
    )
    return user["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]


@needs_helm
def test_the_console_has_its_users_key_state_and_principals_by_secret_reference(
    rendered: list[dict],
) -> None:
    pod, container, env = console_pod(rendered)
    values = yaml.safe_load((REPO / "deploy" / "k8s" / "accord" / "values.yaml").read_text())
    # Its users file and the pseudonymisation key (who-received): Secrets, read-only.
    for variable, secret, key in (
        ("ACCORD_CONSOLE_USERS_FILE", values["console"]["usersSecret"], "users.json"),
        ("ACCORD_PSEUDONYM_KEY_FILE", values["pseudonymKeySecret"], "key"),
    ):
        path = Path(env[variable])
        mount, volume = mounted_from(pod, container, path)
        assert mount["readOnly"] is True
        assert volume["secret"]["secretName"] == secret
        assert volume["secret"]["items"] == [{"key": key, "path": path.name}]
        assert volume["secret"]["defaultMode"] == 0o400
    # A writable state directory of its own (the root file system is read-only).
    state = Path(env["ACCORD_STATE_DIR"])
    [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == state]
    assert not mount.get("readOnly")
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # accord-audit (the IG pages' audit) and every recipient (its live list), each its
    # KafkaUser's own secret, file named after the principal in ACCORD_SECRETS_DIR.
    generated = yaml.safe_load(GENERATED.read_text())["generated"]
    wanted = {"accord-audit", *generated["consoleRecipients"]}
    secrets_dir = Path(env["ACCORD_SECRETS_DIR"])
    mount, volume = mounted_from(pod, container, secrets_dir / "x")
    assert mount["readOnly"] is True and volume["projected"]["defaultMode"] == 0o400
    held = {}
    for source in volume["projected"]["sources"]:
        [item] = source["secret"]["items"]
        held[item["path"]] = (source["secret"]["name"], item["key"])
    assert set(held) == wanted
    for principal, (name, key) in held.items():
        ref = kafka_user_secret(rendered, principal)
        assert (name, key) == (ref["name"], ref["key"]), principal
    # Only those: not the worker's, the gateway's or the registry's.
    assert not {"accord-worker", "accord-gateway", "accord-registry"} & set(held)
    assert not [d for d in rendered if d["kind"] == "Secret"]


def test_the_console_recipients_are_the_registrys_recipients(settings: Settings) -> None:
    from accord.coordinator.views import recipients_known

    values = chart.render_values(settings)["generated"]
    recipients = values["consoleRecipients"]
    assert recipients == sorted(recipients)
    assert "community-food-network" in recipients  # a recipient no council area names
    users = {u["name"] for u in values["users"]}
    for org in recipients:
        assert org in values["organisations"] and org in users
        assert org in recipients_known(settings.policies_dir)
    assert not [org for org in recipients if org.startswith("accord-")]


def test_a_deployments_console_signs_in_with_the_mounted_secrets(tmp_path: Path) -> None:
    """ACCORD_SECRETS_DIR/<principal>: the recipients' and accord-audit's secrets, while
    the console's own ACCORD_PRINCIPAL keeps its own secret file."""
    from accord.console.ig import audit_principal_settings
    from accord.console.lists import _as_recipient
    from accord.core.credentials import CredentialError, held_credential

    mounted = tmp_path / "principals"
    mounted.mkdir()
    (mounted / "accord-audit").write_text("audit-secret\n")
    (mounted / "city-of-edinburgh").write_text("edinburgh-secret\n")
    own = tmp_path / "own"
    own.write_text("console-secret\n")
    console = Settings(
        _env_file=None,
        state_dir=tmp_path / "state",
        principal="accord-console",
        secret_file=own,
        secrets_dir=mounted,
    )
    assert held_credential(console, "accord-console").secret.get_secret_value() == (
        "console-secret"
    )
    audit = held_credential(audit_principal_settings(console), "accord-audit")
    assert (audit.principal, audit.secret.get_secret_value()) == ("accord-audit", "audit-secret")
    recipient = held_credential(_as_recipient(console, "city-of-edinburgh"), "x")
    assert (recipient.principal, recipient.secret.get_secret_value()) == (
        "city-of-edinburgh",
        "edinburgh-secret",
    )
    # A recipient with no mounted secret: the saved-credential path's clear error.
    with pytest.raises(CredentialError, match="no credentials file"):
        held_credential(_as_recipient(console, "fife"), "x")
    (mounted / "fife").write_text("\n")
    with pytest.raises(CredentialError, match="is empty"):
        held_credential(_as_recipient(console, "fife"), "x")
    # The local stack (no ACCORD_PRINCIPAL): the audit principal with its saved credential.
    local = Settings(_env_file=None, state_dir=tmp_path / "state")
    assert audit_principal_settings(local).principal == "accord-audit"


def test_a_read_only_users_file_still_signs_in_when_a_hash_needs_renewing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart mounts the users file from a Secret (read-only): a sign-in whose stored
    hash has older parameters keeps working without rewriting it."""
    import errno

    from argon2 import PasswordHasher

    from accord.console import users as console_users

    path = tmp_path / "users.json"
    console_users.UserStore(path, PasswordHasher(time_cost=1, memory_cost=8192)).add(
        "ig-officer", "ig", "correct horse battery staple"
    )
    before = path.read_text()

    def read_only(*_args: object) -> Path:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(console_users, "write_private", read_only)
    store = console_users.UserStore(path, PasswordHasher(time_cost=2, memory_cost=8192))
    user = store.authenticate("ig-officer", "correct horse battery staple")
    assert user is not None and user.username == "ig-officer"
    assert store.authenticate("ig-officer", "wrong password entirely") is None
    assert path.read_text() == before
