"""`accord console`: serve the console, and manage its local users."""

from __future__ import annotations

import sys

import click

from accord.core.settings import get_settings


@click.group(invoke_without_command=True)
@click.pass_context
def console(ctx: click.Context) -> None:
    """Serve the coordinators' and IG officers' console on ACCORD_CONSOLE_HOST:PORT
    (127.0.0.1:18080, HTTPS with the stack's certificate) until SIGTERM or Ctrl-C.

    Users sign in with accounts from ACCORD_CONSOLE_USERS_FILE (`accord console user add`).
    """
    if ctx.invoked_subcommand is not None:
        return
    from accord.console.server import run_console

    run_console(get_settings())


@console.group("user")
def user() -> None:
    """Add, list and remove the console's local users."""


def _read_password(username: str) -> str:
    """From a prompt (typed twice, not echoed) or, when stdin is not a terminal, its
    first line: never from the command line, where other users could see it."""
    if sys.stdin.isatty():
        return click.prompt(
            f"Password for {username}", hide_input=True, confirmation_prompt=True, err=True
        )
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


@user.command("add")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["coordinator", "ig", "admin"]),
    help="coordinator (one recipient's list), ig (governance pages) or admin (users).",
)
@click.option("--org", help="The recipient a coordinator works for, e.g. city-of-edinburgh.")
@click.option("--name", "display_name", help="The name shown when signed in.")
@click.option("--replace", is_flag=True, help="Change an existing user (new password too).")
def add_user(
    username: str, role: str, org: str | None, display_name: str | None, replace: bool
) -> None:
    """Add a console user. The password is read at a prompt, or from standard input's
    first line when it is not a terminal (`... < password-file`); only its Argon2id hash is
    stored. A coordinator needs --org, a recipient some agreement names."""
    from accord.console.users import UserError, UserStore
    from accord.coordinator.views import recipient_org

    settings = get_settings()
    if org:
        try:
            org = recipient_org(settings.policies_dir, org)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--org") from exc
    store = UserStore(settings.console_users_path)
    password = _read_password(username)
    try:
        added = store.add(username, role, password, org, display_name, replace=replace)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    scope = f" for {added.org}" if added.org else ""
    click.echo(f"{'updated' if replace else 'added'} {added.username}: {added.role}{scope}")


@user.command("list")
def list_users() -> None:
    """List the console's local users: name, role, organisation (never a hash)."""
    from accord.console.users import UserStore

    settings = get_settings()
    users = UserStore(settings.console_users_path).users()
    if not users:
        click.echo(f"no console users in {settings.console_users_path}")
    for entry in users:
        click.echo(f"{entry.username:<24} {entry.role:<12} {entry.org or '-'}")


@user.command("remove")
@click.argument("username")
def remove_user(username: str) -> None:
    """Remove a console user; their sessions end at their next request."""
    from accord.console.users import UserStore

    if not UserStore(get_settings().console_users_path).remove(username):
        raise click.ClickException(f"no console user {username!r}")
    click.echo(f"removed {username}")
