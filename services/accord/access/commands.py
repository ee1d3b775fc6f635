"""`accord partner` and `accord security`: the administrator's access commands."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from accord.core.credentials import ADMIN, credential_file, write_private
from accord.core.kafka import as_principal
from accord.core.settings import get_settings


def _admin_settings():
    return as_principal(get_settings(), ADMIN)


@click.group()
def partner() -> None:
    """Give an organisation of the partner registry access, rotate or revoke it."""


def _hand_over(org: str, secret: str, token: str, secret_file: Path | None) -> None:
    settings = get_settings()
    if secret_file is not None:
        write_private(secret_file, json.dumps({"principal": org, "secret": secret}) + "\n")
        click.echo(f"  credentials written to {secret_file} (0600); hand it to {org} securely")
    else:
        click.echo(f"  credentials in {credential_file(settings, org)} (0600)")
    click.echo(f"  gateway token (shown once): {token}")


@partner.command("add")
@click.argument("org")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the credentials here (0600), to hand to the organisation.",
)
def partner_add(org: str, secret_file: Path | None) -> None:
    """Create ORG's principal (a new secret), its ACLs and topics, and a gateway token.

    ORG must be in the partner registry: named by an agreement or with partners/ORG.yaml."""
    from accord.access.partners import add_partner

    access = add_partner(_admin_settings(), org)
    click.echo(f"{org}: principal created, ACLs and topics applied")
    _hand_over(org, access.credential.secret.get_secret_value(), access.token, secret_file)


@partner.command("rotate")
@click.argument("org")
@click.option("--secret-file", type=click.Path(dir_okay=False, path_type=Path))
def partner_rotate(org: str, secret_file: Path | None) -> None:
    """Give ORG a new secret and gateway token; the old ones stop working."""
    from accord.access.partners import rotate_partner

    access = rotate_partner(_admin_settings(), org)
    click.echo(f"{org}: secret and gateway token rotated")
    _hand_over(org, access.credential.secret.get_secret_value(), access.token, secret_file)


@partner.command("revoke")
@click.argument("org")
def partner_revoke(org: str) -> None:
    """Remove ORG's credential, ACLs and gateway tokens (connected clients are refused
    from their next request)."""
    from accord.access.partners import revoke_partner

    started = time.monotonic()
    removed = revoke_partner(_admin_settings(), org)
    click.echo(
        f"{org}: revoked ({removed} ACLs removed, credential and tokens deleted) in "
        f"{time.monotonic() - started:.2f}s"
    )


@partner.command("list")
def partner_list() -> None:
    """Every organisation of the registry: credential, SCRAM, ACLs, gateway tokens."""
    from accord.access.partners import partner_status

    click.echo(f"{'organisation':<32} {'status':<8} {'file':<5} {'scram':<6} {'acls':>5} tokens")
    for row in partner_status(_admin_settings()):
        status = "revoked" if row.revoked else "active"
        click.echo(
            f"{row.org:<32} {status:<8} {'yes' if row.credential else 'no':<5} "
            f"{'yes' if row.scram else 'no':<6} {row.grants:>5} {row.tokens}"
        )


@click.group()
def security() -> None:
    """Apply and check the access model (principals, topics, ACLs)."""


@security.command("apply")
def security_apply() -> None:
    """Bring the cluster into line with the partner registry and the agreements: every
    principal, topic and ACL (idempotent; run it after changing either)."""
    from accord.access.provision import apply

    apply(_admin_settings(), click.echo)


@security.command("matrix")
@click.option("--all", "show_all", is_flag=True, help="Print every cell, not only the summary.")
def security_matrix(show_all: bool) -> None:
    """Try every principal x topic family x operation on a throw-away deployment, with
    real credentials (and none), and the OPA and registry routes per token and principal;
    print the matrix. Exits 1 if any cell differs from the model."""
    from accord.access.matrix import OPERATIONS, run

    matrix = run(_admin_settings(), lambda line: click.echo(line, err=True))
    principals = list(dict.fromkeys(c.principal for c in matrix.cells))
    fams = list(dict.fromkeys(c.family for c in matrix.cells))
    letter = dict(zip(OPERATIONS, "PCDRX", strict=True))
    click.echo(
        "allowed operations (P produce, C consume, D describe, R create, X delete; "
        "'!' marks a cell that differs from the model)"
    )
    click.echo(f"{'':<20}" + "".join(f"{f[:22]:<23}" for f in fams))
    for who in principals:
        line = f"{who[:19]:<20}"
        for fam in fams:
            cells = [c for c in matrix.cells if c.principal == who and c.family == fam]
            text = "".join(letter[c.operation] if c.allowed else "." for c in cells)
            text += "!" if any(not c.ok for c in cells) else ""
            line += f"{text:<23}"
        click.echo(line)
    if show_all:
        for c in matrix.cells:
            mark = "ok  " if c.ok else "FAIL"
            click.echo(f"{mark} {c.principal:<20} {c.family:<22} {c.operation:<9} {c.detail}")
    for route in matrix.routes:
        if show_all or not route.ok:
            mark = "ok  " if route.ok else "FAIL"
            click.echo(
                f"{mark} {route.surface:<8} {route.caller:<20} {route.route:<30} {route.status}"
            )
    routes_ok = sum(1 for r in matrix.routes if r.ok)
    click.echo(
        f"kafka: {len(matrix.cells)} cells, {matrix.as_promised} as promised, "
        f"{len(matrix.failures())} not; http: {len(matrix.routes)} calls to OPA and the "
        f"registry, {routes_ok} as promised ({matrix.seconds:.0f}s)"
    )
    sys.exit(0 if not matrix.failures() and not matrix.route_failures() else 1)


@click.group()
def deploy() -> None:
    """Deployment descriptions generated from the partner registry and the agreements."""


@deploy.command("render")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the values file here (default: standard output).",
)
@click.option("--replicas", default=3, show_default=True, help="Replication factor of topics.")
@click.option(
    "--min-insync", default=2, show_default=True, help="min.insync.replicas of every topic."
)
def deploy_render(out: Path | None, replicas: int, min_insync: int) -> None:
    """The Helm chart's generated values (deploy/k8s/accord): every topic with its
    partitions and configuration, every principal's ACLs, as `accord security apply`
    would make them on the local stack (ACCORD_TOPIC_PREFIX, ACCORD_WORKER_ID and
    ACCORD_TOPIC_PARTITIONS apply). No secret is written: passwords are Secrets by
    reference. Pass the file to `helm install -f`."""
    import yaml

    from accord.access.deploy import render_values

    if not 1 <= min_insync <= replicas:
        raise click.BadParameter("must be between 1 and --replicas", param_hint="--min-insync")
    text = yaml.safe_dump(render_values(get_settings(), replicas, min_insync), sort_keys=False)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)
        click.echo(f"wrote {out}", err=True)


@deploy.command("check")
@click.option(
    "--values",
    "values_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Generated values to check [default: the chart's generated-values.yaml, which must "
    "equal a fresh `accord deploy render`].",
)
def deploy_check(values_file: Path | None) -> None:
    """Validate the Helm chart offline: `helm template` (helm built with go install on
    first use), every Kubernetes resource against kubernetes-validate's schemas (strict),
    every Strimzi resource against the CRDs' openAPIV3Schema in deploy/k8s/strimzi-crds,
    requests, limits and probes on every container. Exits 1 on any problem."""
    import yaml

    from accord.access import deploy as chart

    settings = get_settings()
    folder = chart.chart_dir(settings)
    if values_file is None:
        values_file = folder / "generated-values.yaml"
        if yaml.safe_load(values_file.read_text()) != chart.render_values(settings):
            click.echo(
                f"{values_file} is stale: the partner registry or the agreements changed; "
                f"run `accord deploy render -o {values_file}`",
                err=True,
            )
            sys.exit(1)
    helm = chart.ensure_helm(settings, lambda line: click.echo(line, err=True))
    rendered = chart.helm_template(helm, folder, [values_file])
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    problems = chart.check_manifests(documents, chart.strimzi_schemas(settings))
    for problem in problems:
        click.echo(problem, err=True)
    kinds: dict[str, int] = {}
    for doc in documents:
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    if problems:
        click.echo(f"deploy check: {len(problems)} problems in {len(documents)} resources")
        sys.exit(1)
    crds = ", ".join(sorted(chart.strimzi_schemas(settings)))
    click.echo(
        f"deploy check: {len(documents)} resources valid (Kubernetes "
        f"{chart.KUBERNETES_VERSION} schemas; Strimzi CRDs {crds}): {summary}"
    )
