"""Partner-facing commands: publishing files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from accord.core.settings import get_settings
from accord.core.terminal import printable
from accord.core.topics import DATASET_RECORDS

# Exit codes: 0 every row published or quarantined; 1 infrastructure failed; 2 usage.
EXIT_USAGE = 2


@click.command()
@click.option("--as", "org", required=True, help="Your organisation id, e.g. nhs-lothian.")
@click.option(
    "--dataset",
    "-d",
    required=True,
    help=f"Dataset: {', '.join(sorted(DATASET_RECORDS))}.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "xlsx"]),
    help="File format; by default from the extension (.csv, .jsonl, .xlsx).",
)
@click.option(
    "--mapping",
    type=click.Path(path_type=Path),
    help="Column mapping (YAML); by default partners/<org>.yaml when it exists.",
)
@click.option("--dry-run", is_flag=True, help="Validate and report; publish nothing.")
@click.argument("file", type=click.Path(path_type=Path))
def publish(
    org: str, dataset: str, fmt: str | None, mapping: Path | None, dry_run: bool, file: Path
) -> None:
    """Validate FILE (CSV, JSON Lines or .xlsx) and publish its rows; invalid rows go to
    quarantine with reasons.

    Exits 0 when every row was either published or quarantined, 2 for a usage error
    (unknown dataset, missing or unreadable file, broken mapping), and 1 when the
    infrastructure failed (nothing counts as published unless Kafka acknowledged it).
    """
    from rich.console import Console
    from rich.progress import Progress

    from accord.core.topics import Topics
    from accord.ingest.publish import PublishInputError, publish_file
    from accord.ingest.readers import ReadLimits, count_rows, format_of

    settings = get_settings()
    console = Console(stderr=True)
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
            )
    except PublishInputError as exc:
        click.secho(f"error: {printable(exc)}", fg="red", err=True)
        sys.exit(EXIT_USAGE)

    would = "would be " if dry_run else ""
    suffix = " (dry run: nothing sent)" if dry_run else ""
    click.echo(f"{report.rows} rows read from {file}{suffix}")
    click.echo(f"  {would}published   {report.published:>7}  to {report.topic}")
    click.echo(f"  {would}quarantined {report.quarantined:>7}  to {Topics(settings).quarantine}")
    if report.reasons:
        click.echo("  top reasons:")
        for reason, count in report.reasons.most_common(5):
            where = printable(report.fields.get(reason, ""))
            example = printable(report.examples[reason])
            click.echo(f"    {count:>7}  {printable(reason):<22} {where:<20} e.g. {example}")
    if report.ignored_columns:
        click.echo(
            "  note: columns ignored (not fields of "
            f"{dataset}): {printable(', '.join(report.ignored_columns))}"
        )
