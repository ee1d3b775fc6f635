"""The `accord` command: one CLI for operators, partners, coordinators and IG officers."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from accord.access.commands import deploy, partner, security
from accord.bench.commands import bench
from accord.campaign.commands import campaign
from accord.console.commands import console
from accord.coordinator.commands import cases
from accord.core.credentials import ADMIN, WORKER
from accord.core.errors import AccordError, InfrastructureError
from accord.core.kafka import as_principal
from accord.core.logging import configure_logging
from accord.core.settings import Settings, describe_settings, get_settings
from accord.gateway.commands import gateway
from accord.governance.commands import audit, policy
from accord.ingest.commands import publish, rejects
from accord.matching.commands import match
from accord.registry.commands import schemas


def _fail(exc: Exception, code: int = 1) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(code)


def infrastructure_failure(exc: BaseException) -> str | None:
    """One line for a failure of Kafka, the registry or OPA that reached the top without
    being turned into an AccordError (a client library's own exception), else None."""
    from confluent_kafka import KafkaException
    from kafka.errors import KafkaError
    from requests import RequestException

    settings = get_settings()
    if isinstance(exc, KafkaError | KafkaException):
        return (
            f"Kafka at {settings.bootstrap_servers} cannot be reached or refused the request "
            f"({type(exc).__name__}: {exc}); is the stack up (`accord stack status`)?"
        )
    if isinstance(exc, RequestException):
        return (
            f"a hub service did not answer ({type(exc).__name__}); is the stack up "
            f"(`accord stack status`)? OPA {settings.opa_url}, registry "
            f"{settings.schema_registry_url}"
        )
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"a connection failed ({type(exc).__name__}: {exc}); is the stack up?"
    return None


class AccordGroup(click.Group):
    """Turns Accord's own errors, and any infrastructure failure (Kafka, the registry,
    OPA away), into one clear line and a non-zero exit (1), never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AccordError as exc:
            _fail(exc)
        except Exception as exc:
            line = infrastructure_failure(exc)
            if line is None:
                raise
            _fail(RuntimeError(line))
        return None


@click.group(cls=AccordGroup)
def main() -> None:
    """Accord: share personal data under data-sharing agreements enforced on every record.

    Configuration comes from ACCORD_* environment variables; `accord settings` lists them.
    """
    # Whatever Accord writes (exports, demo files, state, logs) may hold personal data or
    # secrets: readable by its owner only.
    os.umask(0o077)
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    # kafka-python logs each failed connection before the command reports the failure
    # in one line (AccordGroup); only its worst is worth showing beside that line.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


@main.command("settings")
def show_settings() -> None:
    """Print every setting, its environment variable and its current value (secrets masked)."""
    for env, value, description in describe_settings():
        click.echo(f"{env:<32} {value:<40} {description}")


# --- local stack -----------------------------------------------------------------------


@main.group()
def stack() -> None:
    """Run the local stack: Kafka (KRaft), OPA, the schema registry and the console on
    127.0.0.1."""


ONLY_HELP = "Only these: kafka (every node), kafka-2 (one node), opa, registry, console."


def _stack_settings(brokers: int | None) -> Settings:
    """The settings, with `--brokers` as ACCORD_KAFKA_BROKERS (the bootstrap list follows)."""
    if brokers is not None:
        os.environ["ACCORD_KAFKA_BROKERS"] = str(brokers)
        get_settings.cache_clear()
    return get_settings()


@stack.command("up")
@click.option("--only", multiple=True, metavar="NAME", help=ONLY_HELP)
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=None,
    help="Kafka nodes (combined broker and controller) [default: ACCORD_KAFKA_BROKERS, "
    "else as many as the stack was formatted with, else 1]. Topics get min(3, brokers) "
    "replicas.",
)
def stack_up(only: tuple[str, ...], brokers: int | None) -> None:
    """Start what is not running (idempotent); the first run fetches Kafka and builds OPA."""
    from accord.stack import local

    settings = _stack_settings(brokers)
    _check_only(settings, only)
    local.up(settings, click.echo, list(only) or None)
    if settings.kafka_brokers > 1 and "ACCORD_BOOTSTRAP_SERVERS" not in os.environ:
        click.echo(f"bootstrap  {settings.bootstrap_servers}")


def _check_only(settings: Settings, only: tuple[str, ...]) -> None:
    from accord.stack import local

    known = local.component_names(settings)
    for name in only:
        if name not in known:
            raise click.BadParameter(
                f"{name!r} is not one of {', '.join(known)}", param_hint="--only"
            )


@stack.command("status")
def stack_status() -> None:
    """Report each component (each Kafka node), its state, address and pid; then the
    brokers the cluster knows, its controller quorum and under-replicated partitions."""
    from accord.stack import local

    settings = get_settings()
    rows = local.status(settings)
    for name, state, where, pid in rows:
        click.echo(f"{name:<9} {state:<24} {where:<28} pid {pid}")
    failed = any(state != "running" for _, state, _, _ in rows)
    if any(name.startswith("kafka") and state.startswith("running") for name, state, *_ in rows):
        try:
            health = local.cluster_health(settings)
        except InfrastructureError as exc:
            click.echo(f"cluster   {exc}")
            sys.exit(3)
        fenced = f"; {', '.join(map(str, health.fenced))} fenced" if health.fenced else ""
        click.echo(f"brokers   {', '.join(map(str, health.brokers)) or 'none'} up{fenced}")
        voters = ", ".join(
            f"{node}{'*' if node == health.quorum_leader else ''}{'' if caught_up else ' (behind)'}"
            for node, _, caught_up in health.voters
        )
        click.echo(f"quorum    voters {voters}  (* leader)")
        click.echo(
            f"replicas  {len(health.under_replicated)} of {health.partitions} partitions "
            f"under-replicated, {health.under_min_isr} below min.insync.replicas"
        )
        for topic, partition, isr, replicas in health.under_replicated[:10]:
            click.echo(f"          {topic}[{partition}] in sync {isr} of {replicas}")
        if len(health.under_replicated) > 10:
            click.echo(f"          ... and {len(health.under_replicated) - 10} more")
        failed = failed or bool(health.under_replicated or health.fenced)
    if failed:
        sys.exit(3)


@stack.command("down")
@click.option("--only", multiple=True, metavar="NAME", help=ONLY_HELP)
def stack_down(only: tuple[str, ...]) -> None:
    """Stop exactly the processes `stack up` started (by the pids it recorded)."""
    from accord.stack import local

    settings = get_settings()
    _check_only(settings, only)
    local.down(settings, click.echo, list(only) or None)


@stack.command("secrets")
@click.option(
    "--kafka-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the broker's files go (its server.properties, keystores, admin sign-in).",
)
@click.option(
    "--opa-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where OPA's token hash goes (data.system.accord).",
)
@click.option(
    "--brokers",
    default=1,
    show_default=True,
    type=click.Choice(["1", "3"]),
    help="Brokers of the compose file: 1 (the default services) or 3 (--profile cluster).",
)
def stack_secrets(kafka_dir: Path, opa_dir: Path, brokers: str) -> None:
    """Make the certificates, credentials, OPA token and Kafka configuration that
    docker-compose.yml's services use, in the state dir and the two directories given
    (keeps what exists; ACCORD_TLS_NAMES adds the services' names to the certificates)."""
    from accord.stack.compose import make_secrets

    make_secrets(get_settings(), kafka_dir, opa_dir, click.echo, brokers=int(brokers))


# --- hub services --------------------------------------------------------------------------


@main.command("status")
@click.option(
    "--interval", "-i", default=2.0, show_default=True, help="Seconds between the two scrapes."
)
def service_status(interval: float) -> None:
    """Lag, throughput and the last error of each hub service, from its /metrics.

    Reads the metrics ports of the settings (ACCORD_WORKER_METRICS_PORT and the next ones
    for more workers, ACCORD_GATEWAY_METRICS_PORT, ACCORD_REGISTRY_METRICS_PORT,
    ACCORD_CONSOLE_METRICS_PORT). Exits 3 when a service is down or not ready."""
    from accord.stack.status import collect

    def shown(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    rows = collect(get_settings(), interval)
    click.echo(
        f"{'service':<10} {'state':<22} {'in/s':>8} {'out/s':>8} {'lag':>8} {'rss MB':>7}  "
        "last error"
    )
    for row in rows:
        click.echo(
            f"{row.service:<10} {row.ready:<22} {shown(row.in_per_s):>8} "
            f"{shown(row.out_per_s):>8} {'-' if row.lag is None else row.lag:>8} "
            f"{shown(row.memory_mb, 0):>7}  {row.last_error}"
        )
    if any(row.ready != "ready" for row in rows):
        sys.exit(3)


@main.command()
@click.option(
    "--loglevel",
    "-l",
    default=None,
    help="Level of the worker's events and of its libraries' (faust, Kafka clients) "
    "[default: ACCORD_LOG_LEVEL for the worker's events, and WARNING or above for the "
    "libraries'].",
)
def worker(loglevel: str | None) -> None:
    """Run the stream worker that enforces agreements (until SIGTERM or Ctrl-C). It logs
    one `worker_ready` line once it holds its partitions."""
    from accord.worker.app import run_worker

    settings = get_settings()
    if loglevel:
        configure_logging(settings.log_format, loglevel)
    level = (loglevel or settings.log_level).upper()
    libraries = level if loglevel or level in ("ERROR", "CRITICAL") else "WARNING"
    run_worker(as_principal(settings, WORKER), libraries.lower())


# --- demo ----------------------------------------------------------------------------------


@main.command()
@click.option("--people", default=5000, show_default=True, help="Size of the synthetic list.")
@click.option("--bad-rows", default=12, show_default=True, help="Deliberately bad rows.")
@click.option("--seed", default=2020, show_default=True, help="Seed of the synthetic data.")
def demo(people: int, bad_rows: int, seed: int) -> None:
    """Run the whole flow on synthetic data and print what each council received."""
    from accord.demo.run import run_demo

    configure_logging(get_settings().log_format, "WARNING")  # the demo reports for itself
    run_demo(as_principal(get_settings(), ADMIN), people, bad_rows, seed)


# Each area keeps its commands beside its code; they are all registered here.
main.add_command(publish)
main.add_command(rejects)
main.add_command(campaign)
main.add_command(gateway)
main.add_command(policy)
main.add_command(audit)
main.add_command(match)
main.add_command(schemas)
main.add_command(cases)
main.add_command(bench)
main.add_command(partner)
main.add_command(security)
main.add_command(deploy)
main.add_command(console)


if __name__ == "__main__":
    main()
