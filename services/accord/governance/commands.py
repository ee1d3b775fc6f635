"""Commands for information-governance officers: `accord policy ...` and `accord audit ...`."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import click

from accord.core.credentials import ADMIN, AUDIT, WORKER, private_dir
from accord.core.kafka import as_principal
from accord.core.settings import get_settings
from accord.core.terminal import printable

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str | None) -> datetime | None:
    """An RFC3339 time, a date (UTC midnight), or a span back from now (30m, 24h, 7d)."""
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a time, a date or a span like 24h") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _serde():
    from accord.core.serde import AvroSerde, registry_client

    settings = get_settings()
    return AvroSerde(registry_client(settings, AUDIT), settings.schemas_dir)


# --- policy --------------------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Check, test and simulate policies and agreements before they go live."""


@policy.command("validate")
@click.argument("policies_dir", required=False, type=click.Path(path_type=Path))
def policy_validate(policies_dir: Path | None) -> None:
    """Check every agreement against the agreement schema and the authority rules against
    theirs; one line per problem (file:line: path: problem). Exits 1 when any is invalid."""
    from accord.governance.agreements import validate_authority, validate_dir

    folder = policies_dir or get_settings().policies_dir
    count, problems = validate_dir(folder)
    problems += validate_authority(folder)
    for problem in problems:
        click.echo(str(problem))
    click.echo(f"{count} agreements and the authority rules, {len(problems)} problems")
    sys.exit(1 if problems else 0)


@policy.command("test")
@click.argument("policies_dir", required=False, type=click.Path(path_type=Path))
def policy_test(policies_dir: Path | None) -> None:
    """The policy gate: opa fmt, opa check --strict, opa test with coverage >= 90%, and
    the agreement and authority schemas. Exits 1 when any step fails."""
    from accord.governance.gate import run_gate

    settings = get_settings()
    steps = run_gate(settings.opa_binary, policies_dir or settings.policies_dir, click.echo)
    sys.exit(0 if all(step.ok for step in steps) else 1)


@policy.command("simulate")
@click.argument("candidate_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--since", help="Replay input from this time (RFC3339, a date, or 24h / 7d).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def policy_simulate(candidate_dir: Path, since: str | None, as_json: bool) -> None:
    """Replay retained partner input through the current policies and CANDIDATE_DIR (a
    policies dir, served by an isolated OPA) and report what would change, per recipient
    and field. Nothing is shared or audited during a simulation."""
    from accord.governance.simulate import simulate

    # A simulation replays partner input as the worker does, so it reads as the worker.
    settings = as_principal(get_settings(), WORKER)
    log_file = settings.state_dir / "logs" / "simulate-opa.log"
    private_dir(log_file.parent)
    sim = simulate(settings, _serde(), candidate_dir, parse_since(since), log_file)
    if as_json:
        click.echo(json.dumps(sim.as_dict(), indent=2))
        return
    click.echo(
        f"replayed {sim.records} records ({sim.skipped} the worker would quarantine), "
        f"{sim.decisions} decisions, {sim.decisions - sim.unchanged} would change "
        f"({sim.seconds:.1f} s)"
    )
    for (recipient, flip), change in sorted(sim.flips.items()):
        examples = ", ".join(k[:16] for k in change.examples)
        click.echo(f"  {recipient:<28} {flip:<12} {change.count:>7}  e.g. {examples}")
    for (recipient, name, kind), change in sorted(sim.fields.items()):
        examples = ", ".join(k[:16] for k in change.examples)
        click.echo(f"  {recipient:<28} {name:<20} {kind:<15} {change.count:>7}  e.g. {examples}")


@policy.command("retention")
@click.argument("policies_dir", required=False, type=click.Path(path_type=Path))
@click.option("--check", "mode", flag_value="check", default=True, help="Report only (default).")
@click.option("--apply", "mode", flag_value="apply", help="Set mismatching topics' retention.")
def policy_retention(policies_dir: Path | None, mode: str) -> None:
    """Compare every share topic's retention on the broker with its recipient's agreements
    (the shortest period when several name it; cleanup.policy=compact,delete, retention.ms
    = days x 86,400,000). One line per topic that disagrees: topic, broker value,
    agreement value, agreement id; and one per share topic no agreement names. --check
    exits 1 when any topic disagrees or is uncovered; --apply fixes what disagrees
    (IncrementalAlterConfigs) and exits 1 only when an uncovered topic remains."""
    from accord.governance.retention import apply, check_broker
    from accord.pipeline.retention import agreements_from_dir

    settings = as_principal(get_settings(), ADMIN)
    results = check_broker(settings, agreements_from_dir(policies_dir or settings.policies_dir))
    mismatched = [r for r in results if not r.ok and not r.uncovered]
    uncovered = [r for r in results if r.uncovered]
    for result in mismatched:
        click.echo(("fixed    " if mode == "apply" else "mismatch ") + result.line())
    for result in uncovered:
        click.echo("uncovered " + result.line())
    if mode == "apply":
        apply(settings, mismatched)
    ok = len(results) - len(mismatched) - len(uncovered)
    verb = "set" if mode == "apply" else "disagree"
    click.echo(
        f"{len(results)} share topics: {ok} follow their agreements, {len(mismatched)} {verb}, "
        f"{len(uncovered)} without an agreement"
    )
    failed = bool(uncovered) or (mode == "check" and bool(mismatched))
    sys.exit(1 if failed else 0)


# --- audit ---------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """Answer who received what, from the indexed audit log of every decision."""


@audit.command("index")
@click.option("--follow", is_flag=True, help="Keep indexing new decisions until stopped.")
def audit_index_command(follow: bool) -> None:
    """Fold hub.audit.decisions into the audit index (remembers its offsets)."""
    from accord.governance.audit_index import catch_up, index_path

    settings = as_principal(get_settings(), AUDIT)
    run = catch_up(settings, _serde(), follow=follow)
    click.echo(
        f"indexed {run.indexed} decisions ({run.records} audit records) in {run.seconds:.1f} s "
        f"into {index_path(settings)}"
    )


@audit.command("verify")
@click.option(
    "--topic", help="Verify this topic (e.g. a copy of the audit) instead of the hub's audit."
)
@click.option(
    "--accept-truncated",
    is_flag=True,
    help="Accept partitions whose first records are gone (a finite ACCORD_AUDIT_RETENTION_MS).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_verify(topic: str | None, accept_truncated: bool, as_json: bool) -> None:
    """Check the hash chain of every partition of the audit: each decision record must
    name the hash of the record before it in its partition, so a deleted, altered or
    inserted record breaks a link. One line per partition: records checked, the first
    broken link (offset, kind, why) and the partition's head (keep it elsewhere: it
    protects the newest record). Exits 0 when every chain is intact, 1 when any is
    broken, 2 when the audit cannot be read."""
    from accord.core.errors import AccordError
    from accord.core.topics import Topics
    from accord.governance.verify import verify

    settings = as_principal(get_settings(), AUDIT)
    name = topic or Topics(settings).audit
    try:
        result = verify(settings, _serde(), name, accept_truncated=accept_truncated)
    except AccordError as exc:
        click.echo(f"cannot verify {printable(name)}: {printable(str(exc))}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "topic": name,
                    "intact": result.intact,
                    "partitions": [
                        {
                            "partition": p.partition,
                            "start_offset": p.start_offset,
                            "checked": p.checked,
                            "unchained": p.unchained,
                            "breaks": len(p.breaks),
                            "first_break": None
                            if p.first_break is None
                            else {
                                "offset": p.first_break.offset,
                                "kind": p.first_break.kind,
                                "detail": p.first_break.detail,
                            },
                            "head": p.head,
                        }
                        for p in result.partitions
                    ],
                },
                indent=2,
            )
        )
    else:
        for p in result.partitions:
            state = "intact" if p.intact else f"BROKEN ({len(p.breaks)} breaks)"
            line = f"partition {p.partition:>3}: {p.checked:>8} records checked, {state}"
            if p.unchained:
                line += f", {p.unchained} written before the chain"
            if p.first_break is not None:
                b = p.first_break
                line += f"; first at offset {b.offset}: {b.kind}: {b.detail}"
            click.echo(line + (f"; head {p.head}" if p.head else ""))
        verdict = "intact" if result.intact else "BROKEN"
        click.echo(
            f"{printable(name)}: {result.checked} records in {len(result.partitions)} "
            f"partitions, {verdict} ({result.seconds:.1f} s)"
        )
    sys.exit(0 if result.intact else 1)


CHI_PROMPT = "CHI number (not shown)"
# Far longer than any way of writing a CHI; a line past it is not read whole.
_CHI_LINE_LIMIT = 64


def read_chi(stream: TextIO, *, interactive: bool) -> str:
    """The CHI as the officer gave it: typed at a hidden prompt on a terminal, else the
    first line of `stream` (a pipe or a file). Never from argv, which shell history, `ps`
    and process accounting keep."""
    if interactive:
        return click.prompt(CHI_PROMPT, hide_input=True, err=True)
    return stream.readline(_CHI_LINE_LIMIT + 1)


def refuse_chi_option(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """`--chi` is refused without echoing its value: a CHI on the command line stays in
    shell history and is visible to every user of the machine in the process list."""
    if value is not None:
        raise click.UsageError(
            "--chi is not accepted: a CHI on the command line stays in shell history and "
            "the process list; type it at the prompt, or pipe it on stdin "
            "(accord audit who-received < chi.txt)",
            ctx,
        )


@audit.command("who-received")
@click.option(
    "--chi",
    hidden=True,
    expose_value=False,
    callback=refuse_chi_option,
    help="Refused: give the CHI at the prompt or on stdin.",
)
def audit_who_received() -> None:
    """List which organisations received which fields about one person, when, and under
    which agreement. The CHI is read from a hidden prompt, or from stdin when stdin is not
    a terminal (`accord audit who-received < chi.txt`); it is hashed here and never sent
    or printed. Prints no identifiers."""
    from accord.core.pseudonym import person_key
    from accord.governance.audit_index import (
        catch_up,
        connect,
        index_path,
        receipt_lines,
        who_received,
    )
    from accord.ingest.validation import RowInvalid, validate_chi

    settings = as_principal(get_settings(), AUDIT)
    given = read_chi(sys.stdin, interactive=sys.stdin.isatty())
    if len(given) > _CHI_LINE_LIMIT:
        raise click.UsageError(f"not a valid CHI number: over {_CHI_LINE_LIMIT} characters")
    try:
        digits = validate_chi(given)
    except RowInvalid as exc:  # the messages say why without quoting the value
        raise click.UsageError(f"not a valid CHI number: {exc.errors[0].message}") from None
    key = person_key(settings.require_pseudonym_key(), digits)
    catch_up(settings, _serde())
    db = connect(index_path(settings))
    try:
        receipts, denied = who_received(db, key)
    finally:
        db.close()
    for line in receipt_lines(key, receipts, denied):
        click.echo(printable(line))


@audit.command("agreement")
@click.argument("agreement_id")
@click.option("--since", default="30d", show_default=True, help="RFC3339, a date, or 24h / 7d.")
def audit_agreement(agreement_id: str, since: str) -> None:
    """Counts of decisions under one agreement by recipient and field, and deny reasons."""
    from accord.governance.audit_index import agreement_report, catch_up, connect, index_path

    settings = as_principal(get_settings(), AUDIT)
    start = parse_since(since)
    catch_up(settings, _serde())
    db = connect(index_path(settings))
    try:
        report = agreement_report(db, agreement_id, start)
    finally:
        db.close()
    click.echo(f"{agreement_id} since {start:%Y-%m-%d %H:%M:%S}Z: {report.people} people shared")
    for recipient in sorted(set(report.allowed) | set(report.denied)):
        click.echo(
            f"  {recipient or '(none)':<28} allowed {report.allowed[recipient]:>8}  "
            f"denied {report.denied[recipient]:>8}"
        )
        for (org, name), count in sorted(report.fields.items()):
            if org == recipient:
                click.echo(f"      {name:<24} {count:>8}")
    if report.reasons:
        click.echo("  deny reasons:")
        for reason, count in report.reasons.most_common(10):
            click.echo(f"    {count:>8}  {reason}")
    if report.clauses:
        click.echo("  denials by clause:")
        for clause, count in sorted(report.clauses.items(), key=lambda item: (-item[1], item[0])):
            click.echo(f"    {count:>8}  {agreement_id} clause {clause}")
    if report.principles:
        click.echo("  denials by principle:")
        for principle, count in report.principles.most_common():
            click.echo(f"    {count:>8}  {principle}")


@audit.command("benchmark")
@click.option("--records", default=1_000_000, show_default=True)
def audit_benchmark(records: int) -> None:
    """Time the audit index and both queries on N generated decision records (a
    throw-away topic, deleted afterwards)."""
    from accord.governance.bench import run_bench

    result = run_bench(as_principal(get_settings(), ADMIN), _serde(), records, click.echo)
    click.echo(
        f"{result.records} records: generate {result.generate_s:.1f} s, index "
        f"{result.index_s:.1f} s, catch-up with nothing new {result.catch_up_noop_s:.2f} s, "
        f"who-received {result.who_received_s * 1000:.1f} ms ({result.receipts} rows), "
        f"agreement report {result.agreement_s * 1000:.0f} ms"
    )
