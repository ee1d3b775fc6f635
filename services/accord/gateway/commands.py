"""`accord gateway`: run the HTTP ingest gateway, and issue partners' API tokens."""

from __future__ import annotations

import click

from accord.core.credentials import GATEWAY
from accord.core.kafka import as_principal
from accord.core.settings import get_settings


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ACCORD_GATEWAY_HOST")
@click.option("--port", default=18090, show_default=True, type=int, envvar="ACCORD_GATEWAY_PORT")
@click.pass_context
def gateway(ctx: click.Context, host: str, port: int) -> None:
    """Run the HTTP ingest gateway: POST /v1/datasets/{dataset}/records with a partner's
    API token (until SIGTERM or Ctrl-C). OpenAPI description at /openapi.json.

    Tokens live in $ACCORD_GATEWAY_TOKENS_FILE (default <state dir>/gateway-tokens.json).
    """
    if ctx.invoked_subcommand is not None:
        return
    from accord.gateway.app import run_gateway
    from accord.gateway.tokens import TokenStore, tokens_file

    settings = as_principal(get_settings(), GATEWAY)
    run_gateway(settings, TokenStore(tokens_file(settings)), host, port)


@gateway.command("token")
@click.option("--as", "org", required=True, help="The organisation the token publishes as.")
def token(org: str) -> None:
    """Issue an API token for ORG and print it once; only its salted hash is stored."""
    from accord.gateway.tokens import TokenStore, tokens_file

    store = TokenStore(tokens_file(get_settings()))
    issued = store.issue(org)
    click.echo(issued)
    click.echo(
        f"Token for {org} stored (hashed) in {store.path}. It is shown only this once.",
        err=True,
    )
