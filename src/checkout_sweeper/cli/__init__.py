"""The ``checkout-sweeper`` console script: one group, one small command module per job.

Commands are imported when they run, not when the group loads, so a command pays only for
the libraries it uses (``users list`` does not import gunicorn, the SDK or the demo).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click
from dotenv import load_dotenv

from checkout_sweeper.cli.options import adopt_global_options
from checkout_sweeper.errors import AlreadySaid, SweeperError

COMMANDS = {
    "serve": "checkout_sweeper.cli.serve:serve_command",
    "users": "checkout_sweeper.cli.users:users_group",
    "token": "checkout_sweeper.cli.users:token_command",
    "db": "checkout_sweeper.cli.database:db_group",
    "sweep": "checkout_sweeper.cli.sweep:sweep_command",
    "history": "checkout_sweeper.cli.history:history_group",
    "sweeps": "checkout_sweeper.cli.cancel:sweeps_group",
    "schedules": "checkout_sweeper.cli.schedules:schedules_group",
    "worker": "checkout_sweeper.cli.worker:worker_command",
    "fake-stripe": "checkout_sweeper.fake_stripe.cli:fake_stripe_command",
    "demo": "checkout_sweeper.cli.demo:demo_command",
}


class LazyGroup(click.Group):
    """A group whose commands live in ``COMMANDS`` as ``module:attribute``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return adopt_global_options(command)

    def invoke(self, ctx: click.Context) -> Any:
        """The one place a command's ``SweeperError`` becomes a line on stderr and an exit
        (no line for ``AlreadySaid``: the command said it), and the one place a command ends
        with a code other than 0 (its ``SweeperError``'s)."""
        try:
            return super().invoke(ctx)
        except AlreadySaid as said:
            ctx.exit(said.exit_code)
        except SweeperError as err:
            from checkout_sweeper.cli.context import say_error  # loads the database layer

            say_error(err)
            ctx.exit(err.exit_code)


@adopt_global_options
@click.group(cls=LazyGroup)
@click.version_option(package_name="checkout-sweeper")
def main() -> None:
    """Expire every open Stripe Checkout Session of an account, safely and fast.

    A .env file in the current directory is read first; variables already set win over it.
    The options below work before or after a command's name.
    """
    load_dotenv(Path.cwd() / ".env", override=False)
