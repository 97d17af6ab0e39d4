"""The question before a destructive sweep, one for a single account and for a fleet."""

from __future__ import annotations

import click

from checkout_sweeper.errors import Declined
from checkout_sweeper.stripe_api.adapter import StripeGateway


def confirm_or_exit(gateway: StripeGateway, what: str) -> None:
    """Ask "``what``?"; in LIVE mode the account id must be typed, as destructive tools ask,
    so a reflexive "y" cannot close customers' checkouts. A no is ``Declined`` (exit 1)."""
    if gateway.livemode:
        account_id = gateway.account.rpartition(":")[2]  # live:acct_... -> acct_...
        typed = click.prompt(
            f"LIVE mode: customers paying now would lose their checkout. Type the account id "
            f"({account_id}) to {what[0].lower()}{what[1:]}",
            default="",
            show_default=False,
            err=True,
        )
        agreed = typed.strip() == account_id
    else:
        agreed = click.confirm(f"{what}?", err=True)
    if not agreed:
        click.echo("nothing was expired", err=True)
        raise Declined("nothing was expired")
