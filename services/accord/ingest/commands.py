"""Partner-facing commands: publishing files, and reading back what was rejected."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from accord.core.settings import get_settings
from accord.core.terminal import printable
from accord.core.topics import DATASET_RECORDS

# Exit codes: 0 something published (the rest rejected, with reasons); 1 infrastructure
# failed; 2 usage; 3 nothing published (every row rejected, or an empty file).
EXIT_USAGE = 2
EXIT_NOTHING_PUBLISHED = 3
ENCODINGS = ("utf-8", "utf-8-sig", "windows-1252", "utf-16")


def default_rejects_path(file: Path) -> Path:
    """Beside the input: list.csv -> list.rejects.csv."""
    return file.with_name(f"{file.stem}.rejects.csv")


def _dataset_choice(value: str | None, flag: str) -> str:
    if value not in DATASET_RECORDS:
        known = ", ".join(sorted(DATASET_RECORDS))
        raise click.BadParameter(f"unknown dataset {value!r}; known: {known}", param_hint=flag)
    return value


def _print_fields(dataset: str) -> None:
    from accord.core.settings import get_settings as settings_of
    from accord.ingest.datasets import DATASETS
    from accord.ingest.fields import describe_fields
    from accord.ingest.habits import load_habits

    habits = load_habits(settings_of().home, DATASETS[dataset].rules)
    click.echo(f"Fields of {dataset} (columns may also carry your own names: partners/<org>.yaml)")
    for name, need, rule in describe_fields(dataset, habits):
        click.echo(f"  {name:<20} {need:<9} {rule}")
    click.echo(
        f"  {'event_id':<20} {'optional':<9} your own UUID for the record; by default the "
        "hub derives one"
    )


def _write_template(dataset: str, target: Path) -> None:
    from accord.ingest.fields import template_csv

    if target.exists():
        click.secho(f"error: {target} exists; give another FILE", fg="red", err=True)
        sys.exit(EXIT_USAGE)
    target.write_text(template_csv(dataset), encoding="utf-8")
    click.echo(
        f"wrote {target}: the header of {dataset}; `accord publish --fields {dataset}` "
        "says what each column takes"
    )


def _print_report(report: Any, file: Path, dataset: str) -> None:
    would = "would be " if report.dry_run else ""
    suffix = " (dry run: nothing sent)" if report.dry_run else ""
    how = f" ({printable(report.read_as)})" if report.read_as else ""
    click.echo(f"{report.rows} rows read from {file}{how}{suffix}")
    click.echo(f"  {would}published   {report.published:>7}  to {report.topic}")
    where = f"to {report.rejects_topic}"
    if report.rejects_file is not None:
        where += f"; every problem of each row in {report.rejects_file}"
    click.echo(f"  {would}rejected    {report.quarantined:>7}  {where}")
    if report.problems:
        rows = report.quarantined
        click.echo(f"  {report.problem_count} problems in {rows} rejected row{'s' * (rows != 1)}:")
        click.echo(f"    {'count':>7}  {'field':<20} {'rule':<24} {'first':<10} what to do")
        ordered = sorted(report.problems.items(), key=lambda item: (-item[1], item[0]))
        for (name, rule), count in ordered:
            first = report.first_row[(name, rule)]
            message = report.messages[(name, rule)]
            click.echo(
                f"    {count:>7}  {printable(name or '(row)'):<20} {printable(rule):<24} "
                f"{printable(first):<10} {printable(message)}"
            )
    if report.tidied:
        words = {
            "placeholder": "read as empty",
            "synonym": "read through a synonym",
            "leading_zero": "leading 0 restored",
        }
        parts = [
            f"{count} {name} {words.get(what, what)}"
            for (name, what), count in sorted(report.tidied.items())
        ]
        click.echo(f"  read as meant: {printable('; '.join(parts))}")
    sharing = report.sharing
    if sharing is not None:
        if sharing.shared or sharing.not_shared:
            click.echo(
                f"  sharing now (asked OPA, as the worker will): {sharing.shared} an "
                f"agreement would share, {sharing.not_shared} no active agreement would share"
            )
            ordered_reasons = sorted(sharing.reasons.items(), key=lambda item: (-item[1], item[0]))
            for reason, count in ordered_reasons:
                first = sharing.first_row[reason]
                click.echo(f"    {count:>7}  {printable(first):<10} {printable(reason)}")
        if sharing.note:
            click.echo(f"  sharing: {printable(sharing.note)}")
    if report.ignored_columns:
        click.echo(
            "  note: columns ignored (not fields of "
            f"{dataset}): {printable(', '.join(report.ignored_columns))}"
        )
    if report.published == 0:
        what = "would be published" if report.dry_run else "was published"
        click.echo(f"  nothing {what} (exit code 3)")


@click.command()
@click.option("--as", "org", help="Your organisation id, e.g. nhs-lothian.")
@click.option(
    "--dataset",
    "-d",
    help=f"Dataset: {', '.join(sorted(DATASET_RECORDS))}.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "xlsx"]),
    help="File format; by default from the extension (.csv, .tsv, .txt, .jsonl, .xlsx).",
)
@click.option(
    "--mapping",
    type=click.Path(path_type=Path),
    help="Column mapping (YAML); by default partners/<org>.yaml when it exists.",
)
@click.option("--dry-run", is_flag=True, help="Validate, ask who would receive, publish nothing.")
@click.option(
    "--rejects",
    "rejects",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write every rejected row with all its problems here (.csv or .jsonl, 0600) "
    "[default: beside FILE, FILE's name with .rejects.csv].",
)
@click.option(
    "--encoding",
    type=click.Choice(ENCODINGS),
    help="The CSV's text encoding [default: detected: UTF-8, UTF-8 with BOM, Windows-1252].",
)
@click.option(
    "--header-row",
    type=click.IntRange(min=1),
    help="The line (CSV) or row (.xlsx) holding the column names [default: the first of "
    "the first 20 that names most fields].",
)
@click.option(
    "--sheet", help="The .xlsx sheet to read [default: the one whose header names most fields]."
)
@click.option(
    "--template",
    "template",
    metavar="DATASET",
    help="Write a header-only CSV of DATASET's fields to FILE [default: DATASET.csv].",
)
@click.option(
    "--fields",
    "fields",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[DATASET]",
    help="List the fields of DATASET (or of -d) with their rules, and exit.",
)
@click.argument("file", type=click.Path(path_type=Path), required=False)
def publish(
    org: str | None,
    dataset: str | None,
    fmt: str | None,
    mapping: Path | None,
    dry_run: bool,
    rejects: Path | None,
    encoding: str | None,
    header_row: int | None,
    sheet: str | None,
    template: str | None,
    fields: str | None,
    file: Path | None,
) -> None:
    """Validate FILE (CSV, TSV, JSON Lines or .xlsx) and publish its rows; each rejected
    row goes to your rejects topic (`accord rejects`) and to a rejects file beside FILE,
    with every problem: field, rule and what to do.

    A CSV's encoding (UTF-8, UTF-8 with BOM, Windows-1252) is detected and its delimiter
    (comma, semicolon, tab) sniffed; the header may sit below a title. Placeholders
    (-, N/A, none) in optional fields mean empty; common synonyms ("Edinburgh", "Yes")
    and phones that lost their leading 0 are read as meant. With --dry-run the report
    also says which rows no active agreement would share now, and why.

    \b
    Exit codes:
      0  rows were published (any others rejected, with reasons)
      1  infrastructure failure (nothing counts as published unless Kafka acknowledged it)
      2  usage error: unknown dataset or organisation, missing or unreadable file,
         broken mapping, no header found, a workbook over the limits
      3  nothing was published (every row rejected, or no rows); with --dry-run,
         nothing would be

    \b
    accord publish --fields shielding-list           # what each column takes
    accord publish --template shielding-list         # shielding-list.csv, header only
    accord publish --as nhs-lothian -d shielding-list --dry-run list.csv
    accord publish --as nhs-lothian -d shielding-list list.csv
    """
    if fields is not None:
        _print_fields(_dataset_choice(fields or dataset or template, "--fields"))
        return
    if template is not None:
        chosen = _dataset_choice(template, "--template")
        _write_template(chosen, file or Path(f"{chosen}.csv"))
        return
    if org is None:
        raise click.UsageError("Missing option '--as' (your organisation id).")
    if dataset is None:
        raise click.UsageError("Missing option '--dataset' / '-d'.")
    if file is None:
        raise click.UsageError("Missing argument 'FILE'.")

    from rich.console import Console
    from rich.progress import Progress

    from accord.ingest.publish import PublishInputError, publish_file
    from accord.ingest.readers import ReadLimits, count_rows, format_of

    settings = get_settings()
    console = Console(stderr=True)
    rejects_path = rejects if rejects is not None else default_rejects_path(file)
    try:
        limits = ReadLimits.of(settings)
        total = count_rows(file, format_of(file, fmt), limits) if file.is_file() else None
        with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task(f"checking {file.name}" if dry_run else f"publishing {file.name}")
            bar.update(task, total=total)
            report = publish_file(
                settings,
                org,
                dataset,
                file,
                lambda n: bar.advance(task, n),
                fmt=fmt,
                mapping=mapping,
                dry_run=dry_run,
                encoding=encoding,
                header_row=header_row,
                sheet=sheet,
                rejects=rejects_path,
            )
    except PublishInputError as exc:
        click.secho(f"error: {printable(exc)}", fg="red", err=True)
        sys.exit(EXIT_USAGE)
    _print_report(report, file, dataset)
    if report.published == 0:
        sys.exit(EXIT_NOTHING_PUBLISHED)


@click.command()
@click.option("--as", "org", required=True, help="Your organisation id, e.g. nhs-lothian.")
@click.option(
    "--since",
    help="Only rejects from this time on: 2026-11-30, 2026-11-30T09:00, or an age: 90m, "
    "12h, 3d, 1w.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per reject.")
@click.option("--limit", "-n", default=0, show_default=True, help="Print at most N (0: all).")
def rejects(org: str, since: str | None, as_json: bool, limit: int) -> None:
    """Read your organisation's rejects topic (rejects.<org>), signed in as your
    organisation: every record the hub refused from you (file, HTTP or Kafka), with
    every problem (field, rule, what to do) and where it came from. The rows themselves
    are not printed: they are in the rejects file `accord publish` wrote beside your file.
    """
    from accord.core.orgs import UnknownOrganisation, require_known
    from accord.core.serde import AvroSerde, registry_client
    from accord.ingest.publish import PublishInputError, signed_in_as
    from accord.ingest.rejects import parse_since, problems_of_record, read_rejects

    settings = get_settings()
    try:
        require_known(settings, org, flag="--as")
        moment = parse_since(since) if since else None
        own = signed_in_as(settings, org)
    except (PublishInputError, UnknownOrganisation) as exc:
        click.secho(f"error: {printable(exc)}", fg="red", err=True)
        sys.exit(EXIT_USAGE)
    serde = AvroSerde(registry_client(own, org), own.schemas_dir)
    shown = 0
    try:
        for record in read_rejects(own, serde, org, moment):
            shown += 1
            problems = problems_of_record(record)
            when = record["quarantined_at"].isoformat(timespec="seconds")
            if as_json:
                entry = {
                    "quarantined_at": when,
                    "dataset": record.get("dataset"),
                    "origin": record.get("origin"),
                    "location": record.get("location"),
                    "line_number": record.get("line_number"),
                    "problems": problems,
                }
                click.echo(json.dumps(entry, ensure_ascii=False))
            else:
                where = printable(record.get("location") or "")
                click.echo(f"{when}  {record.get('dataset') or '-'}  {where}")
                for problem in problems:
                    click.echo(
                        f"    {printable(problem.get('field') or '(row)'):<20} "
                        f"{printable(problem.get('rule') or ''):<24} "
                        f"{printable(problem.get('message') or '')}"
                    )
            if limit and shown >= limit:
                break
    except PublishInputError as exc:
        click.secho(f"error: {printable(exc)}", fg="red", err=True)
        sys.exit(EXIT_USAGE)
    if not as_json:
        since_words = f" since {moment.isoformat(timespec='seconds')}" if moment else ""
        click.echo(f"{shown} reject{'s' * (shown != 1)} on rejects.{org}{since_words}", err=True)
