"""``users add|list|remove`` and ``token``: the door onto ``checkout_sweeper.store.users``."""

from __future__ import annotations

import click
from rich.table import Table

from checkout_sweeper.cli.context import load_settings, open_database, print_json, table_console
from checkout_sweeper.errors import NotFound, UsageRefused, UserError
from checkout_sweeper.store.users import (
    add_user,
    check_customer_id,
    check_email,
    find_user,
    list_users,
    remove_user,
)
from checkout_sweeper.tokens import mint_token


@click.group("users")
def users_group() -> None:
    """Manage the users who may call the endpoint."""


@users_group.command("add")
@click.option("--email", required=True, metavar="E", help="Unique e-mail address.")
@click.option("--stripe-customer-id", default=None, metavar="cus_...", help="Such users get a 409.")
@click.option("--json", "as_json", is_flag=True, help="Print the new user as JSON.")
def add_command(email: str, stripe_customer_id: str | None, as_json: bool) -> None:
    """Add a user."""
    try:  # bad input is refused before any database is opened
        check_email(email)
        check_customer_id(stripe_customer_id)
    except UserError as err:
        raise click.BadParameter(
            str(err), param_hint=f"--{(err.field or '').replace('_', '-')}"
        ) from None
    payload = add_user(open_database(load_settings()), email, stripe_customer_id)
    if as_json:
        print_json(payload)
    else:
        click.echo(f"added user {payload['id']} <{payload['email']}>")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the users as one JSON array.")
def list_command(as_json: bool) -> None:
    """List users."""
    users = list_users(open_database(load_settings()))
    if as_json:
        print_json(users)
        return
    table = Table("id", "email", "stripe_customer_id", "created_at")
    for user in users:
        table.add_row(
            str(user["id"]),
            str(user["email"]),
            str(user["stripe_customer_id"] or "-"),
            str(user["created_at"]),
        )
    table_console().print(table)


@users_group.command("remove")
@click.argument("user_id", type=click.IntRange(0))
@click.option("--force", is_flag=True, help="Remove a user who started sweeps (kept on record).")
def remove_command(user_id: int, force: bool) -> None:
    """Remove a user; refused if they started sweeps on record, unless --force."""
    sweeps = remove_user(open_database(load_settings()), user_id, force=force)
    kept = f"; their {sweeps} sweep(s) stay on record" if sweeps else ""
    click.echo(f"removed user {user_id}{kept}")


@click.command("token")
@click.argument("user_id", type=click.IntRange(0))
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(1), metavar="SECONDS")
@click.option("--any-id", is_flag=True, help="Mint even if no user has this id (for tests).")
def token_command(user_id: int, ttl: int, any_id: bool) -> None:
    """Print a signed JWT for USER_ID (development helper; needs JWT_SECRET)."""
    settings = load_settings()
    if not settings.jwt.algorithms[0].startswith("HS") or not settings.jwt.key:
        raise UsageRefused("token needs JWT_SECRET with an HS* algorithm")
    if not any_id and find_user(open_database(settings), user_id) is None:
        raise NotFound(
            f"no user {user_id}: add one with `users add`, or pass --any-id to mint anyway"
        )
    click.echo(mint_token(settings.jwt, str(user_id), ttl_s=ttl))
