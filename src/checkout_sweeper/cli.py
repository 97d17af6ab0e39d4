"""The ``checkout-sweeper`` console script: one group, one small command module per job."""

from __future__ import annotations

import click

from .fake_stripe.cli import fake_stripe_command


@click.group()
@click.version_option(package_name="checkout-sweeper")
def main() -> None:
    """Expire every open Stripe Checkout Session of an account, safely and fast."""


main.add_command(fake_stripe_command)
