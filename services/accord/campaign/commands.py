"""`accord campaign ...`: end-to-end campaigns with figures."""

from __future__ import annotations

import json
import sys

import click

from accord.campaign import FAULTS
from accord.core.credentials import ADMIN
from accord.core.kafka import as_principal
from accord.core.settings import get_settings


@click.group()
def campaign() -> None:
    """Run a campaign against the stack and print its figures (exit 1 if it fails)."""


@campaign.command("faults")
@click.option("--seed", default=2020, show_default=True, help="Seed of the data and fault times.")
@click.option(
    "--people",
    default=42000,
    show_default=True,
    help="Size of the synthetic list (42,000 people make about 51,500 events).",
)
@click.option("--kills", default=3, show_default=True, help="SIGKILLs of the worker.")
@click.option(
    "--faults",
    "fault_names",
    default=",".join(FAULTS),
    show_default=True,
    help="Other faults, comma-separated (empty for none): broker (SIGKILL and restart), "
    "opa (stopped), registry (stopped), lag (the worker frozen out of its group).",
)
@click.option(
    "--scale",
    "fault_scale",
    default=1.0,
    show_default=True,
    help="Scales the outages: OPA 30 s, registry 20 s, worker frozen 120 s.",
)
@click.option("--keep-topics", is_flag=True, help="Keep both runs' topics for inspection.")
@click.option("--timeout", "timeout_s", type=float, help="Seconds to wait for lag 0.")
def faults(
    seed: int,
    people: int,
    kills: int,
    fault_names: str,
    fault_scale: float,
    keep_topics: bool,
    timeout_s: float | None,
) -> None:
    """The demo's input through a worker SIGKILLed at random moments, the broker killed
    and restarted, OPA and the registry stopped and the worker frozen, compared with a
    fault-free run: events in, shared, lost, extra, differing, duplicated, shared without an
    audit record, shared while OPA was down, and whether lag reached 0. Exits 1 unless all
    of those are 0 and the worker caught up."""
    from accord.campaign.faults import run_campaign
    from accord.stack import local

    # The campaign plays the administrator (it makes deployments) and every partner.
    settings = as_principal(get_settings(), ADMIN)
    local.up(settings, click.echo)
    chosen = tuple(name.strip() for name in fault_names.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(FAULTS))
    if unknown:
        raise click.BadParameter(
            f"unknown {', '.join(unknown)}; choose from {', '.join(FAULTS)}",
            param_hint="--faults",
        )
    report = run_campaign(
        settings,
        people=people,
        seed=seed,
        kills=kills,
        faults=chosen,
        fault_scale=fault_scale,
        keep_topics=keep_topics,
        timeout_s=timeout_s,
        echo=click.echo,
    )
    for line in report.lines():
        click.echo(line)
    sys.exit(0 if report.passed else 1)


@campaign.command("bad-input")
@click.option("--seed", default=2020, show_default=True, help="Seed of the generated records.")
@click.option(
    "--records", "records_count", default=100_000, show_default=True, help="Bad records to send."
)
@click.option("--good", "good_per_way", type=int, help="Good records per way in (default N/500).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--keep-topics", is_flag=True, help="Keep the campaign's topics for inspection.")
def bad_input(
    seed: int, records_count: int, good_per_way: int | None, as_json: bool, keep_topics: bool
) -> None:
    """Generated bad records of every kind through CSV, JSON Lines, .xlsx, HTTP and raw
    Kafka, with known good records interleaved, while a worker runs: records per way in and
    per kind, crashes, good records lost, bad records found in the rejects or refused at the
    door with a reason, bad records shared. Exits 1 unless crashes, good lost, unaccounted
    and shared are 0."""
    from accord.campaign.bad_input import run_campaign
    from accord.stack import local

    settings = as_principal(get_settings(), ADMIN)
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    local.up(settings, echo)
    figures = run_campaign(
        settings,
        records_count=records_count,
        seed=seed,
        good_per_way=good_per_way,
        keep_topics=keep_topics,
        echo=echo,
    )
    if as_json:
        click.echo(json.dumps(figures.as_json(), indent=2))
    else:
        for line in figures.lines():
            click.echo(line)
    sys.exit(0 if figures.passed else 1)


@campaign.command("pii")
@click.option("--seed", default=2020, show_default=True, help="Seed of the synthetic data.")
@click.option("--people", default=5000, show_default=True, help="Size of the synthetic list.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--keep-topics", is_flag=True, help="Keep the campaign's topics for inspection.")
def pii(seed: int, people: int, as_json: bool, keep_topics: bool) -> None:
    """The demo's flow, then every log line, Kafka key and header, audit record, rejects
    record (but the publisher's own original) and the output of `accord cases`, `accord
    audit who-received` and `accord audit agreement` scanned for the input's CHI numbers,
    names, phones and postcodes: items scanned per place and hits. Exits 1 on any hit."""
    from accord.campaign.pii import run_campaign
    from accord.stack import local

    settings = as_principal(get_settings(), ADMIN)
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    local.up(settings, echo)
    report = run_campaign(settings, people=people, seed=seed, keep_topics=keep_topics, echo=echo)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(0 if report.passed else 1)
