"""`accord bench`: figures for raw Kafka, faust and the governed pipeline from one run."""

from __future__ import annotations

import json
from pathlib import Path

import click

from accord.core.credentials import ADMIN
from accord.core.kafka import as_principal
from accord.core.logging import configure_logging
from accord.core.settings import get_settings

MODES = ("raw", "faust", "governed")


def counts_option(text: str, hint: str) -> tuple[int, ...]:
    from accord.bench.run import parse_counts

    try:
        return tuple(parse_counts(text))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


@click.command()
@click.option("--events", default=200_000, show_default=True, help="Events in the main workload.")
@click.option("--seed", default=2020, show_default=True, help="Seed of the synthetic workload.")
@click.option(
    "--modes",
    default=",".join(MODES),
    show_default=True,
    help="Which of raw, faust, governed the main run measures (none: '').",
)
@click.option(
    "--drivers",
    default="aiokafka",
    show_default=True,
    help="faust drivers for (b), side by side: aiokafka (the worker's), confluent (librdkafka).",
)
@click.option("--workers", default=1, show_default=True, help="Worker processes for (c).")
@click.option(
    "--partitions", default=6, show_default=True, help="Partitions of every benchmark topic."
)
@click.option(
    "--latency-rates",
    default="200,half",
    show_default=True,
    help="Offered loads (events/s) of the latency runs on (c), per stage; 'half' is half of "
    "the capacity (c) just measured; '' skips them.",
)
@click.option(
    "--latency-seconds", default=15.0, show_default=True, help="Length of each latency run."
)
@click.option(
    "--sizes",
    default="",
    help="Linear cost: (c) alone at each of these sizes, e.g. 50k,200k,1m "
    "[--full: 50000,200000,1000000].",
)
@click.option(
    "--people",
    default="",
    help="Worker memory holding N people (shielding entries), for each N, e.g. 180k,1m "
    "[--full: 180000,1000000].",
)
@click.option(
    "--suspension/--no-suspension",
    default=True,
    show_default=True,
    help="After the latency runs: suspend the agreement of a recipient holding about "
    "--suspension-people people; time to its last tombstone; restore it.",
)
@click.option(
    "--suspension-people",
    default=5_000,
    show_default=True,
    help="How many people the suspended recipient should hold (the closest is chosen).",
)
@click.option(
    "--scotland",
    is_flag=True,
    help="The whole Scottish list and requests from files: first publish to last share.",
)
@click.option(
    "--scotland-people", default=180_000, show_default=True, help="People on the Scottish list."
)
@click.option(
    "--scotland-requests", default=50_000, show_default=True, help="Requests from councils."
)
@click.option(
    "--full",
    is_flag=True,
    help="Every figure: the main run, latency, suspension, --sizes, --people and --scotland "
    "at their full defaults (hours on 2 cores).",
)
@click.option(
    "--scale-out",
    default="",
    help="Worker counts for the scale-out table, e.g. 1,2,4,8: each count runs the "
    "governed pipeline on a deployment of its own with --scale-out-partitions partitions.",
)
@click.option(
    "--scale-out-partitions",
    default=24,
    show_default=True,
    help="Partitions of every topic of the scale-out runs (a worker count above it idles).",
)
@click.option(
    "--scale-out-events",
    default=50_000,
    show_default=True,
    help="Events per scale-out run.",
)
@click.option(
    "--audit-writes",
    "audit_writes",
    default=0,
    help="Only measure the gate's write orders (concurrent, ordered, transactional, chained) "
    "for this many rounds of batches, side by side, and exit.",
)
@click.option(
    "--policy-reads",
    "policy_reads",
    default=0,
    help="Only measure the gate's policy work per batch with the rules' stamp and without "
    "it (reading the rules around the queries) for this many rounds, side by side, and exit.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write figures here.")
@click.option("--keep", is_flag=True, help="Keep the benchmark's topics afterwards.")
@click.option(
    "--timeout", "timeout_s", default=1800.0, show_default=True, help="Max seconds per run."
)
def bench(
    events: int,
    seed: int,
    modes: str,
    drivers: str,
    workers: int,
    partitions: int,
    latency_rates: str,
    latency_seconds: float,
    sizes: str,
    people: str,
    suspension: bool,
    suspension_people: int,
    scotland: bool,
    scotland_people: int,
    scotland_requests: int,
    full: bool,
    scale_out: str,
    scale_out_events: int,
    scale_out_partitions: int,
    audit_writes: int,
    policy_reads: int,
    json_path: Path | None,
    keep: bool,
    timeout_s: float,
) -> None:
    """Measure raw aiokafka and faust pass-through and the governed pipeline side by side,
    and the pipeline's figures: latency per stage, linear cost, memory by people held, the
    suspension-to-last-tombstone time and the Scottish list from files."""
    if audit_writes:
        import asyncio

        from accord.bench import audit_writes as writes

        settings = as_principal(get_settings(), ADMIN)
        configure_logging(settings.log_format, "WARNING")
        figures = asyncio.run(writes.run(settings, batches=audit_writes, say=click.echo))
        for line in writes.report(figures, 200):
            click.echo(line)
        return
    if policy_reads:
        import asyncio

        from accord.bench import policy_reads as reads

        settings = get_settings()
        configure_logging(settings.log_format, "WARNING")
        times = asyncio.run(reads.run(settings, rounds=policy_reads, say=click.echo))
        for line in reads.report(times):
            click.echo(line)
        if json_path:
            json_path.write_text(json.dumps(times))
        return
    from accord.bench.run import Plan, parse_rates, run_bench

    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODES))
    if unknown:
        raise click.BadParameter(f"unknown mode(s) {', '.join(unknown)}", param_hint="--modes")
    chosen_drivers = tuple(d.strip() for d in drivers.split(",") if d.strip())
    if not chosen_drivers or set(chosen_drivers) - {"aiokafka", "confluent"}:
        raise click.BadParameter("aiokafka, confluent or both", param_hint="--drivers")
    if events < 1:
        raise click.BadParameter("must be at least 1", param_hint="--events")
    try:
        rates = tuple(parse_rates(latency_rates))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--latency-rates") from None
    plan = Plan(
        events=events,
        seed=seed,
        modes=tuple(chosen),
        workers=workers,
        partitions=partitions,
        latency_rates=rates if "governed" in chosen else (),
        latency_s=latency_seconds,
        scale_out=counts_option(scale_out, "--scale-out"),
        scale_out_events=scale_out_events,
        scale_out_partitions=scale_out_partitions,
        sizes=counts_option(sizes, "--sizes"),
        people=counts_option(people, "--people"),
        suspension=suspension and "governed" in chosen,
        suspension_people=suspension_people,
        scotland=scotland,
        scotland_people=scotland_people,
        scotland_requests=scotland_requests,
        json_path=json_path,
        keep=keep,
        timeout_s=timeout_s,
        drivers=chosen_drivers,
    )
    if full:
        plan = plan.full()
    settings = as_principal(get_settings(), ADMIN)
    configure_logging(settings.log_format, "WARNING")  # the bench reports for itself
    run_bench(settings, plan)
