"""The `accord` command: one CLI for operators, partners, coordinators and IG officers."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from accord.access.commands import partner, security
from accord.bench.commands import bench
from accord.campaign.commands import campaign
from accord.console.commands import console
from accord.coordinator.commands import cases
from accord.core.credentials import ADMIN, WORKER
from accord.core.errors import AccordError
from accord.core.kafka import as_principal
from accord.core.logging import configure_logging
from accord.core.settings import describe_settings, get_settings
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


@stack.command("up")
@click.option("--only", multiple=True, type=click.Choice(["kafka", "opa", "registry", "console"]))
def stack_up(only: tuple[str, ...]) -> None:
    """Start what is not running (idempotent); the first run fetches Kafka and builds OPA."""
    from accord.stack import local

    local.up(get_settings(), click.echo, list(only) or None)


@stack.command("status")
def stack_status() -> None:
    """Report each component, its state, address and pid."""
    from accord.stack import local

    rows = local.status(get_settings())
    for name, state, where, pid in rows:
        click.echo(f"{name:<9} {state:<24} {where:<28} pid {pid}")
    if any(state != "running" for _, state, _, _ in rows):
        sys.exit(3)


@stack.command("down")
@click.option("--only", multiple=True, type=click.Choice(["kafka", "opa", "registry", "console"]))
def stack_down(only: tuple[str, ...]) -> None:
    """Stop exactly the processes `stack up` started (by the pids it recorded)."""
    from accord.stack import local

    local.down(get_settings(), click.echo, list(only) or None)


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
def stack_secrets(kafka_dir: Path, opa_dir: Path) -> None:
    """Make the certificates, credentials, OPA token and Kafka configuration that
    docker-compose.yml's services use, in the state dir and the two directories given
    (keeps what exists; ACCORD_TLS_NAMES adds the services' names to the certificates)."""
    from accord.stack.compose import make_secrets

    make_secrets(get_settings(), kafka_dir, opa_dir, click.echo)


# --- hub services --------------------------------------------------------------------------


@main.command()
@click.option("--loglevel", "-l", default="warning", show_default=True)
def worker(loglevel: str) -> None:
    """Run the stream worker that enforces agreements (until SIGTERM or Ctrl-C)."""
    from accord.worker.app import run_worker

    run_worker(as_principal(get_settings(), WORKER), loglevel)


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
main.add_command(console)


if __name__ == "__main__":
    main()
