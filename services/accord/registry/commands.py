"""`accord schemas check`: the schema contract, checked before anything is published.

Every .avsc is parsed and held to the conventions (`accord.registry.conventions`), then
checked against the registered history of each subject whose latest schema is the same
record (same full name): the registry answers with the compatibility level of that subject,
as it would when a producer registers the file. Without a reachable registry only the
conventions are checked, and the output says so.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import click
import requests

from accord.core.credentials import ADMIN, Credential, held_credential
from accord.core.serde import REGISTRY_CONTENT_TYPE
from accord.core.settings import get_settings
from accord.registry.conventions import Violation, check_file, full_name


class RegistryUnavailable(Exception):
    """The registry did not answer; compatibility cannot be checked."""


class RegistryHistory:
    """Read-only view of a registry: which subjects carry which record, and checks."""

    def __init__(
        self, url: str, timeout_s: float = 10.0, *, credential: Credential, ca: Path | None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.auth = (credential.principal, credential.secret.get_secret_value())
        # Passed on every call: a session's own `verify` loses to REQUESTS_CA_BUNDLE.
        self.verify: str | bool = str(ca) if ca is not None else True
        self.session.headers["Content-Type"] = REGISTRY_CONTENT_TYPE

    def _call(self, method: str, path: str, **kwargs) -> object:
        try:
            response = self.session.request(
                method, self.url + path, timeout=self.timeout_s, verify=self.verify, **kwargs
            )
        except requests.RequestException as exc:
            raise RegistryUnavailable(f"{self.url} unreachable ({type(exc).__name__})") from exc
        if response.status_code >= 500:
            raise RegistryUnavailable(f"{self.url} failed: HTTP {response.status_code}")
        if response.status_code >= 400:
            body = response.json()
            raise click.ClickException(
                f"registry {method} {path}: {body.get('error_code')} {body.get('message')}"
            )
        return response.json()

    def subjects_by_record(self) -> dict[str, list[str]]:
        """Record full name -> subjects whose latest version is that record."""
        found: dict[str, list[str]] = {}
        for subject in self._call("GET", "/subjects"):
            latest = self._call("GET", f"/subjects/{quote(subject, safe='')}/versions/latest")
            schema = json.loads(latest["schema"])
            if isinstance(schema, dict) and schema.get("type") == "record":
                found.setdefault(full_name(schema), []).append(subject)
        return found

    def problems(self, subject: str, schema_text: str) -> list[str]:
        """The registry's reasons `schema_text` could not be registered under `subject`."""
        path = f"/compatibility/subjects/{quote(subject, safe='')}/versions?verbose=true"
        verdict = self._call("POST", path, json={"schema": schema_text})
        if verdict["is_compatible"]:
            return []
        return verdict.get("messages") or ["incompatible (no reason given)"]


@dataclass
class Report:
    """What was found for one .avsc file."""

    path: Path
    record: str = ""
    violations: list[Violation] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    incompatible: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations and not self.incompatible


def check_schemas(schemas_dir: Path, history: RegistryHistory | None) -> tuple[list[Report], str]:
    """A report per file, and a note on the registry (checked, or why not)."""
    reports = [
        Report(path, violations=check_file(path)) for path in sorted(schemas_dir.glob("*.avsc"))
    ]
    for report in reports:
        if not any(v.rule.startswith(("not readable", "not a valid")) for v in report.violations):
            report.record = full_name(json.loads(report.path.read_text(encoding="utf-8")))
    if history is None:
        return reports, "no registry given: checked conventions only"
    try:
        by_record = history.subjects_by_record()
        for report in reports:
            if not report.record:
                continue
            report.subjects = sorted(by_record.get(report.record, []))
            text = report.path.read_text(encoding="utf-8")
            for subject in report.subjects:
                problems = history.problems(subject, text)
                if problems:
                    report.incompatible[subject] = problems
    except RegistryUnavailable as exc:
        for report in reports:
            report.subjects, report.incompatible = [], {}
        return reports, f"registry {exc}: checked conventions only"
    return reports, f"registry {history.url}: checked against registered history"


def _line(report: Report, checked_registry: bool) -> str:
    name = report.path.name
    if report.violations:
        summary = f"{len(report.violations)} convention violation(s)"
    else:
        summary = "conventions ok"
    if checked_registry and report.record:
        bad = len(report.incompatible)
        total = len(report.subjects)
        if not total:
            summary += "; no registered subject carries this record yet"
        elif bad:
            summary += f"; incompatible with {bad} of {total} registered subject(s)"
        else:
            summary += f"; compatible with {total} registered subject(s)"
    status = "ok  " if report.ok else "FAIL"
    return f"{status} {name:<28} {report.record or '-':<44} {summary}"


@click.group()
def schemas() -> None:
    """The Avro schema contract: conventions and compatibility with registered history."""


@schemas.command("check")
@click.option(
    "--dir",
    "schemas_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of .avsc files [default: the repository's schemas/avro].",
)
@click.option(
    "-s",
    "--schema-registry",
    "registry_url",
    help="Registry to check compatibility against [env: ACCORD_SCHEMA_REGISTRY_URL].",
)
@click.option("--offline", is_flag=True, help="Check the conventions only.")
def check(schemas_dir: Path | None, registry_url: str | None, offline: bool) -> None:
    """Parse every .avsc, enforce the conventions, check compatibility with the registry.

    Prints one line per schema and then each problem, naming file and field. Exits 1 when
    a schema breaks a convention or could not be registered; an unreachable registry is
    reported, not a failure.
    """
    settings = get_settings()
    schemas_dir = schemas_dir or settings.schemas_dir
    history = (
        None
        if offline
        else RegistryHistory(
            registry_url or settings.schema_registry_url,
            credential=held_credential(settings, ADMIN),
            ca=settings.trusted_ca,
        )
    )
    reports, note = check_schemas(schemas_dir, history)
    if not reports:
        raise click.ClickException(f"no .avsc files in {schemas_dir}")
    checked_registry = note.endswith("registered history")
    for report in reports:
        click.echo(_line(report, checked_registry))
        for violation in report.violations:
            click.echo(f"     {violation}")
        for subject, problems in report.incompatible.items():
            for problem in problems:
                click.echo(f"     {report.path.name}: subject {subject}: {problem}")
    failed = sum(not r.ok for r in reports)
    click.echo(f"{len(reports)} schema(s), {failed} failing; {note}")
    if failed:
        sys.exit(1)
