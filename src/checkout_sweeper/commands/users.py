"""``users add`` / ``users list``, and ``token``: the people allowed to call the endpoint."""

from __future__ import annotations

import re

import click
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..auth import AuthError, mint_token
from ..models import User
from .common import load_settings, open_database, print_json, table_console

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CUSTOMER_ID = re.compile(r"^cus_\w+$")


@click.group("users")
def users_group() -> None:
    """Manage the users who may call the endpoint."""


@users_group.command("add")
@click.option("--email", required=True, help="Unique e-mail address.")
@click.option("--stripe-customer-id", default=None, help="cus_...; such users get a 409.")
@click.option("--json", "as_json", is_flag=True, help="Print the new user as JSON.")
def add_user(email: str, stripe_customer_id: str | None, as_json: bool) -> None:
    """Add a user."""
    email = email.strip()
    if not EMAIL.match(email):
        raise click.BadParameter(f"not an e-mail address: {email!r}", param_hint="--email")
    if stripe_customer_id is not None and not CUSTOMER_ID.match(stripe_customer_id):
        raise click.BadParameter(
            f"a Stripe customer id looks like cus_..., got {stripe_customer_id!r}",
            param_hint="--stripe-customer-id",
        )
    db = open_database(load_settings())
    try:
        with db.session() as session:
            user = User(email=email, stripe_customer_id=stripe_customer_id)
            session.add(user)
            session.flush()
            payload = user.as_dict()
    except IntegrityError:
        raise click.ClickException(
            "a user with that e-mail or Stripe customer id already exists; nothing was added"
        ) from None
    if as_json:
        print_json(payload)
    else:
        click.echo(f"added user {payload['id']} <{payload['email']}>")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_users(as_json: bool) -> None:
    """List users."""
    db = open_database(load_settings())
    with db.session() as session:
        users = [u.as_dict() for u in session.scalars(select(User).order_by(User.id))]
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


@click.command("token")
@click.argument("user_id")
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(1), help="Seconds.")
def token_command(user_id: str, ttl: int) -> None:
    """Print a signed JWT for USER_ID (development helper; needs JWT_SECRET)."""
    settings = load_settings()
    if not settings.jwt_algorithms[0].startswith("HS") or not settings.jwt_key:
        raise click.ClickException("token needs JWT_SECRET with an HS* algorithm")
    try:
        click.echo(mint_token(settings, user_id, ttl_s=ttl))
    except AuthError as err:
        raise click.ClickException(err.message) from None
