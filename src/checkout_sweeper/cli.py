"""The ``checkout-sweeper`` console script: one group, one small command module per job."""

from __future__ import annotations

import click

from .commands.database import db_group
from .commands.demo import demo_command
from .commands.serve import serve_command
from .commands.sweep import history_command, sweep_command
from .commands.users import token_command, users_group
from .fake_stripe.cli import fake_stripe_command


@click.group()
@click.version_option(package_name="checkout-sweeper")
@click.option("--verbose", "-v", is_flag=True, help="Debug logs, and the traceback of an error.")
@click.pass_context
def main(context: click.Context, verbose: bool) -> None:
    """Expire every open Stripe Checkout Session of an account, safely and fast."""
    context.meta["verbose"] = verbose


for command in (
    serve_command,
    users_group,
    token_command,
    db_group,
    sweep_command,
    history_command,
    fake_stripe_command,
    demo_command,
):
    main.add_command(command)
