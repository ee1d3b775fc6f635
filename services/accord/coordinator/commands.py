"""`accord cases`: a coordinator's current support list, in the terminal or as CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from accord.core.credentials import CONSOLE
from accord.core.kafka import as_principal
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import get_settings
from accord.core.terminal import markup_safe, plain

SHOWN = (
    ("priority", "priority"),
    ("needs", "needs"),
    ("latest outcome", "latest_outcome"),
    ("given name", "given_name"),
    ("family name", "family_name"),
    ("address", "address_line1"),
    ("postcode", "postcode"),
    ("phone", "contact_phone"),
    ("why", "priority_reasons"),
)


def case_table(title: str, cases: list[dict[str, Any]]) -> Table:
    """The cases as a rich table. Every cell comes from other organisations' data, so each
    is a Text (never markup) with control and invisible characters replaced."""
    from accord.coordinator import views

    table = Table(title=plain(title), title_justify="left")
    for header, _ in SHOWN:
        table.add_column(header)
    for case in cases:
        table.add_row(*(plain(views.cell(case, column)) for _, column in SHOWN))
    return table


@click.command()
@click.option(
    "--council", "-c", required=True, help='Council name or id, e.g. "City of Edinburgh".'
)
@click.option(
    "--csv", "csv_path", type=click.Path(path_type=Path), help="Export the list to a CSV file."
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing updates as they arrive.")
@click.option("--limit", "-n", default=50, show_default=True, help="Rows to print (0 for all).")
def cases(council: str, csv_path: Path | None, follow: bool, limit: int) -> None:
    """Print a council's current support list: priority, needs, latest outcome and the
    contact fields its agreements allow (blank where a field is not released)."""
    from accord.coordinator import views

    settings = as_principal(get_settings(), CONSOLE)
    try:
        recipient = views.recipient_for(council)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--council") from exc
    serde = AvroSerde(registry_client(settings, CONSOLE), settings.schemas_dir)
    view = views.current_list(settings, serde, recipient)
    ordered = views.ordered(view)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(case_table(f"{council}: {len(ordered)} open cases", ordered[: limit or None]))
    if limit and len(ordered) > limit:
        console.print(f"  … {len(ordered) - limit} more; use --limit 0 or --csv to see all")
    if csv_path:
        views.write_csv(ordered, csv_path)
        console.print(plain(f"  exported {len(ordered)} cases to {csv_path}"))
    if follow:
        console.print("  following updates (Ctrl-C to stop)")
        try:
            for key, case in views.follow(settings, serde, recipient, view):
                if case is None:
                    console.print(f"  removed  {markup_safe(key[:12])}")
                else:
                    console.print(
                        plain(
                            f"  updated  {key[:12]}  {views.cell(case, 'priority'):<8} "
                            f"{views.cell(case, 'needs')}  {views.cell(case, 'latest_outcome')}"
                        )
                    )
        except KeyboardInterrupt:
            pass
