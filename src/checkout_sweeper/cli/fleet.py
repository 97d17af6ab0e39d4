"""``sweep --all-accounts`` / ``--account acct_...``: a fleet sweep from the command line.

Like a sweep of one account: on a terminal it counts first (accounts and open sessions) and
asks, LIVE mode wants the platform's account id typed, ``--dry-run`` only lists, ``--json``
prints one object. A line per account as each one ends, on stderr.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

import click
from rich.console import Console
from rich.table import Table

from checkout_sweeper.cli.confirm import confirm_or_exit
from checkout_sweeper.cli.context import open_database, print_json, quiet, table_console
from checkout_sweeper.errors import OutcomeShown, SweeperError, UsageRefused
from checkout_sweeper.runs.fleet.local import FleetSweep
from checkout_sweeper.runs.fleet.result import AccountOutcome, FleetResult
from checkout_sweeper.runs.fleet.rows import FleetPlan
from checkout_sweeper.runs.launch import Asked, count_open, identified_gateway
from checkout_sweeper.settings import Settings
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import Trigger


@dataclasses.dataclass(frozen=True)
class FleetAsk:
    """What the command line asked of a fleet sweep."""

    accounts: tuple[str, ...]  # empty: every connected account
    asked: Asked
    yes: bool
    as_json: bool
    parallel: int

    @property
    def asking(self) -> bool:
        return not self.asked.dry_run and not self.yes


def sweep_fleet(settings: Settings, ask: FleetAsk, no_terminal: str) -> None:
    if ask.asking and not sys.stdin.isatty():
        raise UsageRefused(no_terminal)
    db = open_database(settings)
    console = Console(stderr=True, quiet=quiet() and not ask.asking)
    platform = identified_gateway(settings, db, dry_run=ask.asked.dry_run)
    accounts = list(ask.accounts) or platform.connected_accounts()
    if ask.asking or console.is_terminal:
        _show_counts(console, settings, platform, accounts, ask)
    if ask.asking:
        confirm_or_exit(platform, f"Sweep all {len(accounts)} accounts")
    plan = FleetPlan(accounts, ask.asked, Trigger.CLI, parallel=ask.parallel)
    fleet = FleetSweep(settings, db, platform, plan, on_account=_reporter(console))
    result = fleet.run()
    if ask.as_json:
        print_json(result.as_data())
    elif not quiet():
        _summary(result)
    if result.exit_code:
        raise OutcomeShown(f"fleet sweep {result.sweep_id} ended {result.status}", result)


def _show_counts(
    console: Console,
    settings: Settings,
    platform: StripeGateway,
    accounts: list[str],
    ask: FleetAsk,
) -> None:
    """The facts a user confirms: the platform, the mode, each account's open sessions."""
    total = 0
    mode = "[bold red]LIVE[/bold red]" if platform.livemode else "test"
    console.print(f"platform  {platform.account} ({mode} mode)", soft_wrap=True, highlight=False)
    with console.status("counting open Checkout Sessions") as status:
        for account in accounts:
            status.update(f"counting open Checkout Sessions of {account}")
            try:
                found = count_open(settings, platform.for_account(account), ask.asked.scope)
            except SweeperError as err:
                console.print(f"  {account}  refused: {err}", soft_wrap=True, highlight=False)
                continue
            total += found
            console.print(f"  {account}  {found} open", highlight=False)
    console.print(
        f"found     {total} open Checkout Sessions in {len(accounts)} accounts", highlight=False
    )


def _reporter(console: Console) -> Callable[[AccountOutcome], None]:
    def report(outcome: AccountOutcome) -> None:
        shown = outcome.as_dict()
        line = f"{outcome.account}  {outcome.status}  expired {shown['expired_count']}"
        if outcome.error:
            line += f"  ({outcome.error})"
        console.print(line, soft_wrap=True, highlight=False, markup=False)

    return report


def _summary(result: FleetResult) -> None:
    table = Table("account", "status", "expired", "already closed", "failed", "still open")
    for outcome in result.accounts:
        row = outcome.as_dict()
        remaining = row["remaining_open_count"]
        table.add_row(
            outcome.account,
            outcome.status,
            str(row["expired_count"]),
            str(row["already_closed_count"]),
            str(row["failed_count"]),
            "unknown" if remaining is None else str(remaining),
        )
    data = result.as_data()
    table.add_row(
        "all",
        result.status,
        str(data["expired_count"]),
        str(data["already_closed_count"]),
        str(len(data["failed"])),
        str(data["remaining_open_count"]),
    )
    table_console().print(table)
    click.echo(f"fleet sweep {result.sweep_id}: {result.status}", err=True)
