"""`accord bench`: figures for raw Kafka, faust and the governed pipeline from one run."""

from __future__ import annotations

from pathlib import Path

import click

from accord.core.credentials import ADMIN
from accord.core.kafka import as_principal
from accord.core.logging import configure_logging
from accord.core.settings import get_settings

MODES = ("raw", "faust", "governed")


@click.command()
@click.option("--events", default=200_000, show_default=True, help="Events in the workload.")
@click.option("--seed", default=2020, show_default=True, help="Seed of the synthetic workload.")
@click.option(
    "--modes",
    default=",".join(MODES),
    show_default=True,
    help="Which of raw, faust, governed to run.",
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
    "--latency-rate",
    default=2000.0,
    show_default=True,
    help="Offered load (events/s) of the latency run; 0 skips it.",
)
@click.option(
    "--latency-seconds", default=15.0, show_default=True, help="Length of the latency run."
)
@click.option(
    "--scale-out",
    default="",
    help="Worker counts for the scale-out table on 12 partitions, e.g. 1,2,4.",
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
    latency_rate: float,
    latency_seconds: float,
    scale_out: str,
    scale_out_events: int,
    audit_writes: int,
    json_path: Path | None,
    keep: bool,
    timeout_s: float,
) -> None:
    """Measure raw aiokafka and faust pass-through and the governed pipeline, side by side."""
    if audit_writes:
        import asyncio

        from accord.bench import audit_writes as writes

        settings = as_principal(get_settings(), ADMIN)
        configure_logging(settings.log_format, "WARNING")
        figures = asyncio.run(writes.run(settings, batches=audit_writes, say=click.echo))
        for line in writes.report(figures, 200):
            click.echo(line)
        return
    from accord.bench.run import parse_counts, run_bench

    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODES))
    if unknown:
        raise click.BadParameter(f"unknown mode(s) {', '.join(unknown)}", param_hint="--modes")
    chosen_drivers = tuple(d.strip() for d in drivers.split(",") if d.strip())
    if not chosen_drivers or set(chosen_drivers) - {"aiokafka", "confluent"}:
        raise click.BadParameter("aiokafka, confluent or both", param_hint="--drivers")
    if events < 1:
        raise click.BadParameter("must be at least 1", param_hint="--events")
    settings = as_principal(get_settings(), ADMIN)
    configure_logging(settings.log_format, "WARNING")  # the bench reports for itself
    run_bench(
        settings,
        events=events,
        seed=seed,
        modes=chosen,
        workers=workers,
        partitions=partitions,
        latency_rate=latency_rate if "governed" in chosen else 0.0,
        latency_s=latency_seconds,
        scale_out=parse_counts(scale_out),
        scale_out_events=scale_out_events,
        json_path=json_path,
        keep=keep,
        timeout_s=timeout_s,
        drivers=chosen_drivers,
    )
