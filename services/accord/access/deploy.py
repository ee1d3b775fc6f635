"""`accord deploy render`: the Helm chart's generated values, from the partner registry
and the agreements.

The chart in `deploy/k8s/accord/` describes the hub on Kubernetes with Strimzi: its
`KafkaTopic` and `KafkaUser` resources are made from the values written here, which come
from the same functions the local stack's `accord security apply` uses
(`accord.access.provision.all_topics` for every topic with its partitions and
configuration, `accord.access.acls.derive` for every principal's grants). So a partner
added to `partners/` or an agreement changed in `policies/` reaches the cluster by running
this again and upgrading the release; nothing is written by hand twice.

Passwords are never in the values: each KafkaUser reads its password from a Secret named
`<release>-scram-<principal>` (key `password`) that the platform's secret store provides.
The administrator is the cluster's only super user and has no ACLs of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accord.access import acls
from accord.access.provision import active_organisations, all_topics, deployment_grants
from accord.coordinator.views import recipients_known
from accord.core import credentials as principals
from accord.core.errors import StackError
from accord.core.settings import Settings

# Strimzi's names for Kafka's ACL vocabulary.
RESOURCE_TYPES = {
    acls.TOPIC: "topic",
    acls.GROUP: "group",
    acls.CLUSTER: "cluster",
    acls.TRANSACTIONAL_ID: "transactionalId",
}
PATTERNS = {acls.LITERAL: "literal", acls.PREFIXED: "prefix"}
OPERATIONS = {
    "READ": "Read",
    "WRITE": "Write",
    "CREATE": "Create",
    "DELETE": "Delete",
    "ALTER": "Alter",
    "DESCRIBE": "Describe",
    "CLUSTER_ACTION": "ClusterAction",
    "ALTER_CONFIGS": "AlterConfigs",
    "DESCRIBE_CONFIGS": "DescribeConfigs",
    "IDEMPOTENT_WRITE": "IdempotentWrite",
    "ALL": "All",
}


def resource_name(topic: str) -> str:
    """A Kubernetes name (RFC 1123, at most 63 characters here) for a Kafka topic; the
    topic's own name goes in `spec.topicName`."""
    name = re.sub(r"[^a-z0-9-]+", "-", topic.lower()).strip("-") or "topic"
    if len(name) > 63:
        import hashlib

        digest = hashlib.sha256(topic.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    return name


def user_acls(grants: list[acls.Grant]) -> list[dict[str, Any]]:
    """Strimzi `spec.authorization.acls` of one principal: operations grouped by resource."""
    by_resource: dict[tuple[str, str, str], set[str]] = {}
    for grant in grants:
        key = (grant.resource_type, grant.name, grant.pattern)
        by_resource.setdefault(key, set()).add(OPERATIONS[grant.operation])
    return [
        {
            "resource": {
                "type": RESOURCE_TYPES[kind],
                **({"name": name} if kind != acls.CLUSTER else {}),
                **({"patternType": PATTERNS[pattern]} if kind != acls.CLUSTER else {}),
            },
            "operations": sorted(operations),
            "host": "*",
        }
        for (kind, name, pattern), operations in sorted(by_resource.items())
    ]


def render_values(settings: Settings, replicas: int = 3, min_insync: int = 2) -> dict[str, Any]:
    """The chart's generated values: topics (partitions, replicas, configuration) and
    users (ACLs), for the organisations of the partner registry that are not revoked."""
    orgs = active_organisations(settings)
    topics = [
        {
            "resource": resource_name(name),
            "topicName": name,
            "partitions": partitions,
            "replicas": replicas,
            "config": {"min.insync.replicas": str(min_insync), **config},
        }
        for name, (partitions, config) in sorted(all_topics(settings, orgs).items())
    ]
    grants = deployment_grants(settings, orgs)
    users = []
    for principal in sorted({grant.principal for grant in grants}):
        if principal == principals.ADMIN:
            continue
        mine = [grant for grant in grants if grant.principal == principal]
        users.append({"name": principal, "acls": user_acls(mine)})
    return {
        "generated": {
            "note": "written by `accord deploy render`; do not edit (edit partners/ and "
            "policies/, then render again)",
            "topicPrefix": settings.topic_prefix,
            "workerGroup": settings.worker_id,
            "organisations": orgs,
            # The console signs in as each of these to show its live list (its secret
            # mounted into the console's ACCORD_SECRETS_DIR): the active organisations
            # an agreement names as a recipient.
            "consoleRecipients": sorted(set(orgs) & recipients_known(settings.policies_dir)),
            "topicPartitions": settings.topic_partitions,
            "topics": topics,
            "users": users,
        }
    }


# --- checking the chart offline (`accord deploy check`) -----------------------------------

CHART_DIR = ("deploy", "k8s", "accord")
STRIMZI_DIR = ("deploy", "k8s", "strimzi-crds")
STRIMZI_GROUP = "kafka.strimzi.io"
HELM_MODULE = "helm.sh/helm/v3/cmd/helm"
HELM_VERSION = "v3.22.0"
KUBERNETES_VERSION = "1.33.0"  # the schemas kubernetes-validate checks the core resources with


def chart_dir(settings: Settings) -> Path:
    return settings.home.joinpath(*CHART_DIR)


def helm_binary(settings: Settings) -> Path:
    return settings.cache_dir / "helm" / HELM_VERSION / "helm"


def ensure_helm(settings: Settings, report: Callable[[str], None]) -> Path:
    """helm, built once with `go install` into the cache dir (as the stack builds OPA)."""
    binary = helm_binary(settings)
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise StackError("helm is built with `go install` on first use: install Go 1.24+")
    report(f"building helm {HELM_VERSION} with go install (first run only, a few minutes)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "install", f"{HELM_MODULE}@{HELM_VERSION}"],
        env={**os.environ, "CGO_ENABLED": "0", "GOBIN": str(binary.parent)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not binary.exists():
        raise StackError(f"go install of helm failed: {(result.stdout + result.stderr)[-800:]}")
    return binary


def helm_template(helm: Path, chart: Path, values: list[Path], release: str = "accord") -> str:
    """The chart rendered offline (no cluster is contacted)."""
    argv = [str(helm), "template", release, str(chart), "--kube-version", KUBERNETES_VERSION]
    for each in values:
        argv += ["-f", str(each)]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"helm template failed: {result.stderr.strip()[-1500:]}")
    return result.stdout


def strimzi_schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    """kind -> the stored CRD's openAPIV3Schema, version and source."""
    found = {}
    for path in sorted(settings.home.joinpath(*STRIMZI_DIR).glob("*.json")):
        crd = json.loads(path.read_text())
        found[crd["kind"]] = crd
    return found


def check_manifests(
    documents: list[dict[str, Any]], strimzi: dict[str, dict[str, Any]]
) -> list[str]:
    """Problems of rendered manifests: Kubernetes resources against kubernetes-validate's
    schemas (strict: an unknown field is a problem), Strimzi resources against the CRDs'
    openAPIV3Schema kept in the repository; every container with requests, limits and
    both probes. Empty: all valid."""
    import jsonschema
    import kubernetes_validate

    problems = []
    for doc in documents:
        kind, name = doc.get("kind", "?"), (doc.get("metadata") or {}).get("name", "?")
        where = f"{kind}/{name}"
        api = str(doc.get("apiVersion", ""))
        if api.startswith(STRIMZI_GROUP + "/"):
            crd = strimzi.get(kind)
            if crd is None:
                problems.append(f"{where}: no stored Strimzi CRD for kind {kind}")
                continue
            if api != f"{crd['group']}/{crd['version']}":
                problems.append(f"{where}: apiVersion {api}, the stored CRD is {crd['version']}")
            validator = jsonschema.Draft7Validator(crd["openAPIV3Schema"])
            for error in sorted(validator.iter_errors(doc), key=str):
                path = ".".join(str(p) for p in error.absolute_path)
                problems.append(f"{where}: {path}: {error.message[:300]}")
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{where}: {path}: {exc.message[:300]}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: no Kubernetes {KUBERNETES_VERSION} schema for {api} {kind}")
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers", []):
            resources = container.get("resources") or {}
            missing = [
                part
                for part, there in (
                    ("requests", resources.get("requests")),
                    ("limits", resources.get("limits")),
                    ("livenessProbe", container.get("livenessProbe")),
                    ("readinessProbe", container.get("readinessProbe")),
                )
                if not there
            ]
            if missing:
                problems.append(f"{where}: container {container.get('name')} lacks {missing}")
        if kind == "Secret":
            problems.append(f"{where}: the chart must not carry secrets (reference them)")
    return problems
