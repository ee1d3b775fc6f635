"""`accord cases`: a recipient's current support list, in the terminal or as CSV, its
changes as they come, and outcomes recorded against a case by its reference."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from accord.core.credentials import CONSOLE
from accord.core.kafka import as_principal
from accord.core.serde import AvroSerde, registry_client
from accord.core.settings import Settings, get_settings
from accord.core.terminal import plain, printable
from accord.ingest.datasets import OUTCOMES, SUPPORT_NEEDS

# (header, field); a source field's column is shown only when the list's agreement
# releases it (`fields_released`), the hub's own columns always.
SHOWN = (
    ("ref", "reference"),
    ("priority", "priority"),
    ("needs", "needs"),
    ("latest outcome", "latest_outcome"),
    ("given name", "given_name"),
    ("family name", "family_name"),
    ("address", "address_line1"),
    ("address line 2", "address_line2"),
    ("town", "town"),
    ("postcode", "postcode"),
    ("phone", "contact_phone"),
    ("shielding", "is_shielding"),
    ("lives alone", "lives_alone"),
    ("why", "priority_reasons"),
)
ALWAYS = {"reference", "priority", "needs", "latest_outcome", "priority_reasons"}
# The source field that releases a column, where it is not the column's own name.
RELEASED_AS = {"is_shielding": "shielding_status"}
# Exit codes of `accord cases outcome`.
EXIT_NOT_FOUND = 3


def shown_columns(cases: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The columns to print: the hub's, and each field some case on the list was
    released (a list never shows a column its agreement withholds)."""
    released = {name for case in cases for name in case.get("fields_released") or ()}
    return [
        (header, column)
        for header, column in SHOWN
        if column in ALWAYS or RELEASED_AS.get(column, column) in released
    ]


def case_table(title: str, cases: list[dict[str, Any]], columns=None) -> Table:
    """The cases as a rich table. Every cell comes from other organisations' data, so each
    is a Text (never markup) with control and invisible characters replaced."""
    from accord.coordinator import views

    columns = columns or shown_columns(cases)
    table = Table(title=plain(title), title_justify="left")
    for header, _ in columns:
        table.add_column(header, no_wrap=header == "ref")
    for case in cases:
        table.add_row(*(plain(views.cell(case, column)) for _, column in columns))
    return table


def resolve_recipient(settings: Settings, council: str | None, recipient: str | None) -> str:
    """The organisation whose list is read: a council by name or id, or any recipient."""
    from accord.coordinator import views

    if council and recipient:
        raise click.UsageError("give --council or --recipient, not both")
    if council:
        try:
            return views.recipient_for(council)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--council") from exc
    if recipient:
        try:
            return views.recipient_org(settings.policies_dir, recipient)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--recipient") from exc
    raise click.UsageError(
        'say whose list: --council "City of Edinburgh", or --recipient ORG for any recipient '
        "(e.g. community-food-network)"
    )


def console_settings() -> Settings:
    return as_principal(get_settings(), CONSOLE)


def json_case(case: dict[str, Any]) -> dict[str, Any]:
    from accord.coordinator import views

    out = {"reference": views.case_reference(case["case_key"])}
    for name, value in case.items():
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


recipient_options = [
    click.option("--council", "-c", help='Council name or id, e.g. "City of Edinburgh".'),
    click.option(
        "--recipient",
        "-r",
        help="Any recipient's organisation id, e.g. community-food-network (third sector).",
    ),
]


def with_recipient(command):
    for option in reversed(recipient_options):
        command = option(command)
    return command


@click.group(invoke_without_command=True)
@with_recipient
@click.option(
    "--csv", "csv_path", type=click.Path(path_type=Path), help="Export the list to a CSV file."
)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON (one document).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new, changed and removed cases.")
@click.option("--limit", "-n", default=50, show_default=True, help="Rows to print (0 for all).")
@click.pass_context
def cases(
    ctx: click.Context,
    council: str | None,
    recipient: str | None,
    csv_path: Path | None,
    as_json: bool,
    follow: bool,
    limit: int,
) -> None:
    """Print a recipient's current support list: a case reference to quote, priority,
    needs, latest outcome and every field its agreements release (columns for fields no
    agreement releases to it are left out).

    A council's list by --council, any recipient's (a third-sector partner's) by
    --recipient. With no open case it says why: no agreement, a draft or suspended one,
    nothing shared yet, or everyone has left the list. `accord cases outcome REF` records
    what happened for a case.
    """
    if ctx.invoked_subcommand is not None:
        return
    from accord.coordinator import views

    settings = console_settings()
    org = resolve_recipient(settings, council, recipient)
    serde = AvroSerde(registry_client(settings, CONSOLE), settings.schemas_dir)
    read = views.read_list(settings, serde, org)
    ordered = views.ordered(read.cases)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "recipient": org,
                    "open_cases": len(ordered),
                    "cases": list(map(json_case, ordered)),
                },
                indent=2,
                default=str,
            )
        )
    else:
        console = Console(width=None if sys.stdout.isatty() else 200)
        label = council or org
        agreements = views.agreements_naming(settings.policies_dir, org)
        if not ordered:
            console.print(plain(f"{label}: 0 open cases"))
            console.print(plain(f"  {views.empty_list_explanation(org, read, agreements)}"))
        else:
            columns = shown_columns(ordered)
            console.print(
                case_table(f"{label}: {len(ordered)} open cases", ordered[: limit or None], columns)
            )
            if limit and len(ordered) > limit:
                console.print(f"  … {len(ordered) - limit} more; use --limit 0 or --csv to see all")
            withheld = [h for h, c in SHOWN if (h, c) not in columns]
            if withheld:
                console.print(plain(f"  not released to {org}: {', '.join(withheld)}"))
            for line in views.inactive_agreements(agreements):
                console.print(plain(f"  {line}"))
    if csv_path:
        views.write_csv(ordered, csv_path)
        click.echo(f"  exported {len(ordered)} cases to {csv_path}", err=as_json)
    if follow:
        click.echo("  following updates (Ctrl-C to stop)", err=as_json)
        try:
            for update in views.follow(settings, serde, org, read.cases):
                if as_json:
                    click.echo(
                        json.dumps(
                            {
                                "change": update.kind,
                                "reference": views.case_reference(update.case_key),
                                "why": update.why,
                                "changes": views.changes(update.previous, update.case)
                                if update.case
                                else [],
                                "case": json_case(update.case) if update.case else None,
                            },
                            default=str,
                        )
                    )
                else:
                    click.echo(printable(update.line()))
        except KeyboardInterrupt:
            pass


# The dataset's own symbols (UNKNOWN is for partners' files, not a coordinator's choice).
OUTCOME_CHOICES = tuple(outcome for outcome in OUTCOMES if outcome != "UNKNOWN")
NEED_CHOICES = SUPPORT_NEEDS


def _symbol(value: str, choices: tuple[str, ...], flag: str) -> str:
    symbol = value.strip().upper().replace(" ", "_").replace("-", "_")
    if symbol not in choices:
        raise click.BadParameter(
            f"{value!r} is not one of: {', '.join(c.lower() for c in choices)}", param_hint=flag
        )
    return symbol


@cases.command("outcome")
@click.argument("reference")
@click.option("--need", required=True, help="The need it answers, e.g. WELFARE_CHECK or food.")
@click.option(
    "--outcome",
    "outcome",
    required=True,
    help="What happened: delivered, needs_met, no_answer, declined, referred, "
    "unable_to_contact or other.",
)
@with_recipient
@click.option(
    "--as",
    "org",
    help="Publish as this organisation (default: the recipient whose list holds the case).",
)
@click.option(
    "--at",
    "at",
    help="When it happened (ISO 8601, e.g. 2026-12-02T10:30Z); default: now.",
)
def record_outcome(
    reference: str,
    need: str,
    outcome: str,
    council: str | None,
    recipient: str | None,
    org: str | None,
    at: str | None,
) -> None:
    """Record what happened for an open need of a case, by the case's reference.

    REFERENCE is the first column of `accord cases` (e.g. 7KQM-2XPA-9R; case and dashes
    do not matter). The need must be open on your list, the welfare check a shielding
    person is owed included. The outcome is published as your organisation's
    support-outcome (checked like any other), and the case's list entry changes once
    the hub has applied it. Exit 0 published, 2 usage error, 3 no such case or need on
    your list, 1 infrastructure failure.
    """
    from accord.coordinator import views
    from accord.coordinator.outcomes import OutcomeRefused, PublishInputError, publish_outcome
    from accord.ingest.pipeline import Location

    need_symbol = _symbol(need, NEED_CHOICES, "--need")
    outcome_symbol = _symbol(outcome, OUTCOME_CHOICES, "--outcome")
    try:
        wanted = views.normalise_reference(reference)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="REFERENCE") from exc
    if at:
        try:
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError as exc:
            raise click.BadParameter(f"{at!r} is not an ISO 8601 time", param_hint="--at") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if moment > datetime.now(UTC):
            raise click.BadParameter("an outcome cannot happen in the future", param_hint="--at")
    else:
        moment = datetime.now(UTC)

    settings = console_settings()
    holder = resolve_recipient(settings, council, recipient)
    serde = AvroSerde(registry_client(settings, CONSOLE), settings.schemas_dir)
    view = views.read_list(settings, serde, holder).cases
    try:
        case = views.find_case(view, wanted)
    except LookupError as exc:
        click.secho(f"error: {exc}; `accord cases` lists {holder}'s references", fg="red", err=True)
        sys.exit(EXIT_NOT_FOUND)
    open_needs = list(case.get("needs") or ())
    if "needs" in (case.get("fields_released") or ()) and need_symbol not in open_needs:
        shown = ", ".join(n.lower() for n in open_needs) or "none"
        click.secho(
            f"error: case {wanted} has no open {need_symbol.lower()} need (open: {shown})",
            fg="red",
            err=True,
        )
        sys.exit(EXIT_NOT_FOUND)

    publisher_org = org or holder
    location = Location("CLI", f"accord cases outcome {wanted}", f"case {wanted}")
    try:
        recorded = publish_outcome(
            get_settings(), publisher_org, case, need_symbol, outcome_symbol, moment, location
        )
    except (PublishInputError, OutcomeRefused) as exc:
        raise click.UsageError(str(exc)) from exc
    record = {"event_id": recorded.event_id}
    click.echo(
        f"recorded {outcome_symbol.lower()} for {need_symbol.lower()} on case {wanted} "
        f"({views.display_name(case)}) as {publisher_org}, event {record['event_id']}; "
        "the list shows it once the hub has applied it"
    )
