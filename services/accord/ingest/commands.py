"""Partner-facing commands: publishing files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from accord.core.settings import get_settings


def count_data_rows(path: Path) -> int:
    with open(path, encoding="utf-8-sig") as handle:
        return max(0, sum(1 for line in handle if line.strip()) - 1)


@click.command()
@click.option("--as", "org", required=True, help="Your organisation id, e.g. nhs-lothian.")
@click.option("--dataset", "-d", required=True, help="Dataset, e.g. shielding-list.")
@click.argument("file", type=click.Path(path_type=Path))
def publish(org: str, dataset: str, file: Path) -> None:
    """Validate FILE (CSV) and publish its rows; invalid rows go to quarantine with reasons.

    Exits 0 when every row was either published or quarantined, and non-zero only when
    the infrastructure failed (nothing is counted as published unless Kafka acknowledged it).
    """
    from rich.progress import Progress

    from accord.core.topics import Topics
    from accord.ingest.publish import publish_file

    settings = get_settings()
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(
            f"publishing {file.name}", total=count_data_rows(file) if file.is_file() else None
        )
        report = publish_file(settings, org, dataset, file, lambda n: progress.advance(task, n))
    click.echo(f"{report.rows} rows read from {file}")
    click.echo(f"  published   {report.published:>7}  to {report.topic}")
    quarantine = Topics(settings).quarantine
    click.echo(f"  quarantined {report.quarantined:>7}  to {quarantine}")
    for reason, count in report.reasons.most_common(5):
        click.echo(f"    {count:>5}  {reason}")
