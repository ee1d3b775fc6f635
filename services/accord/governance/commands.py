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


AGAINST = click.Choice(["auto", "git", "served", "none"])
AGAINST_HELP = (
    "What versions are compared with: the last committed version in git, the agreements "
    "OPA serves, or nothing; auto: git when the folder is in git, else what OPA serves."
)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def policies_folder(given: Path | None) -> Path:
    """The folder to check (the repository's policies/ by default), refused in one line
    (exit 2) when it is not a policies folder."""
    from accord.governance.agreements import not_a_policies_folder

    folder = given or get_settings().policies_dir
    reason = not_a_policies_folder(folder)
    if reason:
        click.echo(f"error: {printable(reason)}", err=True)
        sys.exit(2)
    return folder


@policy.command("validate")
@click.argument("policies_dir", required=False, type=click.Path(path_type=Path))
@click.option("--against", type=AGAINST, default="auto", show_default=True, help=AGAINST_HELP)
def policy_validate(policies_dir: Path | None, against: str) -> None:
    """Check every agreement's shape (the agreement schema) and meaning, and the
    authority rules' shape. Meaning: listed fields exist in the dataset's Avro record
    (with suggestions), special-category (health) fields only for health recipients,
    providers and recipients known organisations of the right kind, council areas
    Scotland's, terms not changed without a higher version (status, status_reason and
    review_date may change alone). A review date passed or within 30 days is a warning.
    One line per problem (file:line: path: problem). Exits 0 with no errors (warnings
    allowed), 1 with any error, 2 when POLICIES_DIR is not a policies folder."""
    from accord.governance.agreements import context_for, validate_authority, validate_dir

    folder = policies_folder(policies_dir)
    ctx = context_for(folder, get_settings(), against)
    count, problems = validate_dir(folder, ctx)
    problems += validate_authority(folder)
    for problem in problems:
        click.echo(printable(str(problem)))
    errors = sum(1 for p in problems if p.is_error)
    click.echo(
        f"{count} agreements and the authority rules: {plural(errors, 'error')}, "
        f"{plural(len(problems) - errors, 'warning')} ({'; '.join(ctx.notes)})"
    )
    sys.exit(1 if errors else 0)


@policy.command("test")
@click.argument("policies_dir", required=False, type=click.Path(path_type=Path))
@click.option("--against", type=AGAINST, default="auto", show_default=True, help=AGAINST_HELP)
def policy_test(policies_dir: Path | None, against: str) -> None:
    """The policy gate: opa fmt, opa check --strict, the Rego tests (which use fixture
    agreements, so any change to the agreements themselves passes them) with coverage
    >= 90%, the agreements as `validate` checks them, and the authority rules' schema.
    Exits 0 when every step passes, 1 when any fails, 2 when POLICIES_DIR is not a
    policies folder."""
    from accord.governance.agreements import context_for
    from accord.governance.gate import run_gate

    settings = get_settings()
    folder = policies_folder(policies_dir)
    if not settings.opa_binary.exists():
        click.echo(
            f"error: OPA is not built at {settings.opa_binary}; run `accord stack up`", err=True
        )
        sys.exit(1)
    ctx = context_for(folder, settings, against)

    def echo(text: str) -> None:
        for line in text.splitlines():
            click.echo(printable(line))

    steps = run_gate(settings.opa_binary, folder, echo, ctx=ctx)
    sys.exit(0 if all(step.ok for step in steps) else 1)


@policy.command("stamp")
@click.argument("policies_dir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--check",
    is_flag=True,
    help="Only say whether the stamp is current (exit 1 when stale).",
)
def policy_stamp(policies_dir: Path | None, check: bool) -> None:
    """Write the rules' stamp (a digest of every rule file's text) into
    accord/revision/revision.rego. The gate's decisions name it, so that OPA's answer
    carries its own revision; run it after changing any .rego file (agreements are data
    and need no stamp). `accord policy test` fails while the stamp is stale."""
    from accord.governance.stamp import stamp_problem, write_stamp

    folder = policies_folder(policies_dir)
    if check:
        problem = stamp_problem(folder)
        click.echo(f"error: {printable(problem)}" if problem else "the rules' stamp is current")
        sys.exit(1 if problem else 0)
    try:
        stamp, changed = write_stamp(folder)
    except (OSError, ValueError) as exc:
        click.echo(f"error: {printable(str(exc))}", err=True)
        sys.exit(1)
    click.echo(f"{'stamped' if changed else 'already stamped'}: {stamp}")


@policy.command("simulate")
@click.argument("candidate_dir", type=click.Path(path_type=Path))
@click.option("--since", help="Replay input from this time (RFC3339, a date, or 24h / 7d).")
@click.option(
    "--chi",
    "one_person",
    is_flag=True,
    help="Also show one person's decisions before and after. The CHI is asked at a hidden "
    "prompt (or read from stdin), hashed here with the pseudonymisation key, never sent or "
    "printed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def policy_simulate(
    candidate_dir: Path, since: str | None, one_person: bool, as_json: bool
) -> None:
    """Replay retained partner input through the current policies and CANDIDATE_DIR (a
    policies folder, served by an isolated OPA) and report what would change: each
    allow→deny / deny→allow flip with the agreement and clause of the deny behind it,
    the fields newly shared or withheld per recipient, and how many records each
    recipient holds now (per the audit index) would be withdrawn. Nothing is shared or
    audited during a simulation. Exits 2 when CANDIDATE_DIR is not a policies folder,
    1 when Kafka or OPA cannot be reached."""
    from accord.core.errors import AccordError
    from accord.governance.simulate import simulate

    folder = policies_folder(candidate_dir)
    start = parse_since(since)
    person = _person_key(get_settings()) if one_person else None
    held, held_note = _holders()
    # A simulation replays partner input as the worker does, so it reads as the worker.
    settings = as_principal(get_settings(), WORKER)
    log_file = settings.state_dir / "logs" / "simulate-opa.log"
    private_dir(log_file.parent)
    try:
        sim = simulate(settings, _serde(), folder, start, log_file, held=held, person=person)
    except AccordError as exc:
        click.echo(f"error: cannot simulate: {printable(str(exc))}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(sim.as_dict(), indent=2, ensure_ascii=False))
        return
    for line in simulation_lines(sim, held_note):
        click.echo(printable(line))


def simulation_lines(sim, held_note: str) -> list[str]:
    """The simulation report as text: pseudonymous key prefixes, never identifiers."""
    lines = [
        f"replayed {sim.records} records ({sim.skipped} the worker would quarantine), "
        f"{sim.decisions} decisions, {sim.decisions - sim.unchanged} would change "
        f"({sim.seconds:.1f} s)"
    ]
    if sim.flips:
        lines.append("flips (recipient, change, count, the agreement and clause of the deny):")
    for (recipient, flip, agreement, clause), change in sorted(sim.flips.items()):
        cause = f"{agreement or '(no agreement)'}" + (f" clause {clause}" if clause else "")
        examples = ", ".join(k[:16] for k in change.examples)
        lines.append(f"  {recipient:<28} {flip:<11} {change.count:>7}  {cause}: {change.reason}")
        lines.append(f"  {'':<28} {'':<11} {'':>7}  e.g. {examples}")
    if sim.fields:
        lines.append("fields (recipient, field, change, count):")
    for (recipient, name, kind), change in sorted(sim.fields.items()):
        examples = ", ".join(k[:16] for k in change.examples)
        lines.append(f"  {recipient:<28} {name:<20} {kind:<15} {change.count:>7}  e.g. {examples}")
    if not sim.held_known:
        lines.append(f"records held now that would be withdrawn: unknown ({held_note})")
    elif not sim.retracted:
        lines.append(f"records held now that would be withdrawn: none ({held_note})")
    else:
        total = sum(c.count for c in sim.retracted.values())
        lines.append(f"records held now that would be withdrawn: {total} ({held_note})")
        for (recipient, agreement), change in sorted(sim.retracted.items()):
            lines.append(f"  {recipient:<28} {agreement or '(no agreement)':<10} {change.count:>7}")
    if sim.person is not None:
        lines.append(f"person {sim.person[:16]}… (pseudonymous key):")
        if not sim.person_found:
            lines.append("  no open case for this person in the retained input")
        for recipient, (before, after) in sorted(sim.person_decisions.items()):
            for label, side in (("now", before), ("candidate", after)):
                verdict = "shared" if side.allow else "withheld"
                detail = ", ".join(side.fields) if side.allow else side.reason
                agreement = side.agreement_id or "-"
                lines.append(f"  {recipient:<28} {label:<9} {verdict:<8} {agreement:<8} {detail}")
    return lines


def _person_key(settings) -> str:
    """The pseudonymous key of the CHI given at the prompt or on stdin (never argv)."""
    from accord.core.pseudonym import person_key
    from accord.ingest.validation import RowInvalid, validate_chi

    given = read_chi(sys.stdin, interactive=sys.stdin.isatty())
    if len(given) > _CHI_LINE_LIMIT:
        raise click.UsageError(f"not a valid CHI number: over {_CHI_LINE_LIMIT} characters")
    try:
        digits = validate_chi(given)
    except RowInvalid as exc:  # the messages say why without quoting the value
        raise click.UsageError(f"not a valid CHI number: {exc.errors[0].message}") from None
    return person_key(settings.require_pseudonym_key(), digits)


def _holders() -> tuple[set[tuple[str, str]] | None, str]:
    """Who holds what now, from the audit index (brought up to date when Kafka answers)."""
    from accord.core.errors import AccordError
    from accord.governance.audit_index import catch_up, connect, holders, index_path

    settings = as_principal(get_settings(), AUDIT)
    path = index_path(settings)
    note = "per the audit index"
    try:
        catch_up(settings, _serde())
    except AccordError:
        if not path.exists():
            return None, "the audit could not be read and there is no local audit index"
        note = "per the local audit index; the audit could not be read to bring it up to date"
    db = connect(path)
    try:
        return holders(db), note
    finally:
        db.close()


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


def _indexed(settings) -> tuple[Path, str]:
    """Bring the audit index up to date and say so; when the audit cannot be read (Kafka
    down), answer from the local index as it is, and say how far it goes."""
    from accord.core.errors import AccordError
    from accord.governance.audit_index import catch_up, connect, index_path, indexed_until

    path = index_path(settings)
    try:
        catch_up(settings, _serde())
        return path, "audit index up to date"
    except AccordError as exc:
        if not path.exists():
            click.echo(
                f"error: the audit cannot be read ({printable(str(exc))}) and there is no "
                f"local audit index at {path}",
                err=True,
            )
            sys.exit(1)
    db = connect(path)
    try:
        until = indexed_until(db)
    finally:
        db.close()
    when = f"{until:%Y-%m-%d %H:%M:%S}Z" if until else "nothing indexed yet"
    return (
        path,
        f"from the local audit index only (the audit could not be read); newest decision {when}",
    )


@audit.command("who-received")
@click.option(
    "--chi",
    hidden=True,
    expose_value=False,
    callback=refuse_chi_option,
    help="Refused: give the CHI at the prompt or on stdin.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (subject access).")
def audit_who_received(as_json: bool) -> None:
    """List which organisations received which fields about one person, when, and under
    which agreement; which of those shares were withdrawn since (when, why); and how often
    the person was withheld from whom. The CHI is read from a hidden prompt, or from stdin
    when stdin is not a terminal (`accord audit who-received < chi.txt`); it is hashed
    here and never sent or printed. When Kafka is down the answer comes from the local
    audit index, saying how far it goes. Prints no identifiers."""
    from accord.governance.audit_index import answer, connect, receipt_lines

    settings = as_principal(get_settings(), AUDIT)
    key = _person_key(settings)
    path, source = _indexed(settings)
    db = connect(path)
    try:
        found = answer(db, key)
    finally:
        db.close()
    if as_json:
        body = {**found.as_dict(), "source": source, "answered_at": _now()}
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    for line in receipt_lines(key, found.receipts, found.denied, found.retractions):
        click.echo(printable(line))
    click.echo(f"({source})")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _agreement_state(agreement_id: str) -> dict | None:
    """The agreement as the repository's policies folder holds it, or None."""
    from accord.pipeline.retention import agreements_from_dir

    try:
        agreements = agreements_from_dir(get_settings().policies_dir)
    except Exception:  # an unreadable folder is validate's to report
        return None
    found = agreements.get(agreement_id)
    return found if isinstance(found, dict) else None


@audit.command("agreement")
@click.argument("agreement_id")
@click.option("--since", default="30d", show_default=True, help="RFC3339, a date, or 24h / 7d.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_agreement(agreement_id: str, since: str, as_json: bool) -> None:
    """Counts of decisions under one agreement by recipient and field (shared, withheld,
    withdrawn), deny reasons, clauses and principles. An id neither in policies/agreements
    nor in the audit is refused with suggestions (exit 2); a draft, suspended or expired
    agreement is named as such."""
    from accord.governance.audit_index import agreement_ids, agreement_report, connect
    from accord.governance.meaning import suggest
    from accord.pipeline.retention import agreements_from_dir

    settings = as_principal(get_settings(), AUDIT)
    start = parse_since(since)
    try:
        on_disk = set(agreements_from_dir(get_settings().policies_dir))
    except Exception:
        on_disk = set()
    path, source = _indexed(settings)
    db = connect(path)
    try:
        known = on_disk | agreement_ids(db)
        if agreement_id not in known:
            hint = suggest(agreement_id, known) or (
                f" (agreements: {', '.join(sorted(known))})" if known else ""
            )
            click.echo(
                f"error: no agreement {printable(agreement_id)!r}{printable(hint)}", err=True
            )
            sys.exit(2)
        report = agreement_report(db, agreement_id, start)
    finally:
        db.close()
    state = _agreement_state(agreement_id)
    status = (state or {}).get("status")
    if state is None:
        note = "not in policies/agreements (removed since); its audited decisions follow"
    elif status == "active":
        note = ""
    else:
        reason = (state or {}).get("status_reason")
        note = f"{status}" + (f" ({reason})" if reason else "") + ": nothing is shared under it"
        if status == "draft":
            note = "a draft: nothing is shared under it until its status is active"
    if as_json:
        body = {
            "agreement_id": agreement_id,
            "status": status,
            "since": start.isoformat().replace("+00:00", "Z"),
            **report.as_dict(),
            "source": source,
            "answered_at": _now(),
        }
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    click.echo(
        f"{agreement_id} since {start:%Y-%m-%d %H:%M:%S}Z: {report.people} people shared"
        + (f", {report.people_withdrawn} withdrawn" if report.people_withdrawn else "")
    )
    if note:
        click.echo(f"  {agreement_id} is {printable(note)}")
    for recipient in sorted(set(report.allowed) | set(report.denied) | set(report.withdrawn)):
        click.echo(
            f"  {recipient or '(none)':<28} allowed {report.allowed[recipient]:>8}  "
            f"denied {report.denied[recipient]:>8}  withdrawn {report.withdrawn[recipient]:>8}"
        )
        for (org, name), count in sorted(report.fields.items()):
            if org == recipient:
                click.echo(f"      {name:<24} {count:>8}")
    if report.reasons:
        click.echo("  deny reasons:")
        for reason, count in report.reasons.most_common(10):
            click.echo(f"    {count:>8}  {printable(reason)}")
    if report.clauses:
        click.echo("  denials by clause:")
        for clause, count in sorted(report.clauses.items(), key=lambda item: (-item[1], item[0])):
            click.echo(f"    {count:>8}  {agreement_id} clause {clause}")
    if report.principles:
        click.echo("  denials by principle:")
        for principle, count in report.principles.most_common():
            click.echo(f"    {count:>8}  {principle}")
    click.echo(f"  ({source})")


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
