"""`accord gateway`: run the HTTP ingest gateway, and issue partners' API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from accord.core.credentials import GATEWAY
from accord.core.kafka import as_principal
from accord.core.settings import get_settings


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ACCORD_GATEWAY_HOST")
@click.option("--port", default=18090, show_default=True, type=int, envvar="ACCORD_GATEWAY_PORT")
@click.pass_context
def gateway(ctx: click.Context, host: str, port: int) -> None:
    """Run the HTTPS ingest gateway: POST /v1/datasets/{dataset}/records with a partner's
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
@click.option(
    "--ttl-days",
    type=float,
    default=None,
    help="Days until the token expires [default: ACCORD_GATEWAY_TOKEN_TTL_DAYS, 90].",
)
@click.option("--rotate", is_flag=True, help="Revoke ORG's earlier tokens with this one.")
def token(org: str, ttl_days: float | None, rotate: bool) -> None:
    """Issue an API token for ORG and print it once; only its salted hash is stored."""
    from accord.gateway.tokens import TokenError, issue_token, rotate_token, tokens_file

    settings = get_settings()
    ttl = timedelta(days=ttl_days) if ttl_days is not None else None
    try:
        issued = (rotate_token if rotate else issue_token)(settings, org, ttl)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(issued)
    click.echo(
        f"Token for {org} stored (hashed) in {tokens_file(settings)}. It is shown only this once.",
        err=True,
    )


@gateway.command("tokens")
def tokens() -> None:
    """List every token: id, organisation, issued, expires (never a secret)."""
    from accord.gateway.tokens import list_tokens

    now = datetime.now(UTC)
    for info in list_tokens(get_settings()):
        state = "expired" if info.expired(now) else "valid"
        click.echo(
            f"{info.token_id}  {info.org:<36} issued {info.issued_at}  "
            f"expires {info.expires_at or '-'}  {state}"
        )


@gateway.command("revoke")
@click.option("--as", "org", required=True, help="The organisation whose tokens to revoke.")
def revoke(org: str) -> None:
    """Revoke every token of ORG; a running gateway refuses them from the next request."""
    from accord.core.orgs import UnknownOrganisation, require_known
    from accord.gateway.tokens import list_tokens, revoke_tokens

    settings = get_settings()
    if not any(info.org == org for info in list_tokens(settings)):
        try:  # nothing to revoke: say so, and whether the id was mistyped
            require_known(settings, org, flag="--as")
        except UnknownOrganisation as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {revoke_tokens(settings, org)} token(s) of {org}")
