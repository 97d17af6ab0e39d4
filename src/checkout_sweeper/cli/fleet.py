"""``sweep --all-accounts`` / ``--account acct_...``: a fleet sweep from the command line.

Like a sweep of one account: on a terminal it counts first (accounts and open sessions) and
asks, LIVE mode wants the platform's account id typed, ``--dry-run`` only lists, ``--json``
prints one object. A line per account as each one ends, on stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from checkout_sweeper.cli.confirm import confirm_or_exit
from checkout_sweeper.cli.context import open_database, print_json, quiet, table_console
from checkout_sweeper.cli.display import slimmed
from checkout_sweeper.engine.side_effects import said
from checkout_sweeper.errors import OutcomeShown, SweeperError, UsageRefused
from checkout_sweeper.runs.checks import OPERATOR, Services
from checkout_sweeper.runs.fleet.result import (
    AccountOutcome,
    FleetAnswer,
    FleetResult,
    summed_side_effects,
)
from checkout_sweeper.runs.fleet.rows import PENDING, ended_children, fleet_of, settle_parent
from checkout_sweeper.runs.launch import Asked, identified_gateway, preview_open
from checkout_sweeper.runs.queue.pool import stop_local_pools
from checkout_sweeper.runs.queue.producer import in_process_broker
from checkout_sweeper.runs.rows import children_of, run_status
from checkout_sweeper.runs.submit import submit_fleet
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import RunStatus

FOLLOW_EVERY_S = 0.25  # how often the accounts' runs are read for the lines printed
STOP_TIMEOUT_S = 60.0  # how long a stopped fleet waits for its sweeps to record


@dataclasses.dataclass(frozen=True)
class FleetAsk:
    """What the command line asked of a fleet sweep."""

    accounts: tuple[str, ...]  # empty: every connected account
    asked: Asked
    yes: bool
    as_json: bool
    parallel: int
    full: bool = False  # a dry run's open sessions whole in --json

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
    # a person waits at the terminal: an account another sweep holds fails now, not later
    settings = dataclasses.replace(settings, busy_wait_s=0)
    services = Services(settings, db, in_process_broker(), threads=ask.parallel)
    submitted = submit_fleet(OPERATOR, services, ask.asked, accounts)
    bars = FleetBars(console, ask.asked.dry_run, services.db, submitted.sweep_id)
    with bars.shown():
        result = _followed(
            services, submitted.sweep_id, _reporter(console, ask.asked.dry_run), bars
        )
    if ask.as_json:
        print_json(_answer(result, whole=ask.full))
    elif not quiet():
        _summary(result, ask.asked.dry_run)
    if result.exit_code:
        raise OutcomeShown(f"fleet sweep {result.sweep_id} ended {result.status}", result)


class FleetBars:
    """On a terminal, a bar per account while the fleet runs, read from its sweep's row
    (handled of found, expired so far; found so far in a dry run); nothing elsewhere."""

    def __init__(self, console: Console, dry_run: bool, db: Database, parent_id: str) -> None:
        self.on = console.is_terminal and not console.quiet
        self.dry_run, self.db, self.parent_id = dry_run, db, parent_id
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    def shown(self) -> contextlib.AbstractContextManager[object]:
        return self.bar if self.on else contextlib.nullcontext()

    def update(self) -> None:
        if not self.on:
            return
        for child in children_of(self.db, self.parent_id):
            name = child.stripe_account or child.account
            if name not in self.tasks:
                self.tasks[name] = self.bar.add_task(name, total=None, detail="")
            handled = child.expired_count + child.already_closed_count + child.failed_count
            total = None if self.dry_run else max(child.found_count, handled) or None
            done = child.found_count if self.dry_run else handled
            said = "found" if self.dry_run else f"expired {child.expired_count}"
            detail = f"{child.status}  {said}"
            self.bar.update(self.tasks[name], total=total, completed=done, detail=detail)


def _followed(
    services: Services,
    parent_id: str,
    report: Callable[[AccountOutcome], None],
    bars: FleetBars | None = None,
) -> FleetResult:
    """The fleet to its end, a line per account as each ends (and its bars on a terminal);
    Ctrl-C or SIGTERM stops every account's sweep (each records what it did) and the fleet
    ends ``interrupted``."""
    reported: set[str] = set()
    try:
        while not _report_ended(services, parent_id, reported, report):
            if bars is not None:
                bars.update()
            time.sleep(FOLLOW_EVERY_S)
    except KeyboardInterrupt:
        running = [c for c in children_of(services.db, parent_id) if c.status in PENDING]
        click.echo(
            f"stopping: {len(running)} accounts' sweeps in flight record what they did, then "
            f"fleet sweep {parent_id} is recorded as interrupted",
            err=True,
        )
        stop_local_pools(STOP_TIMEOUT_S, "interrupted (Ctrl-C or SIGTERM)")
        settle_parent(services.db, parent_id)
        _report_ended(services, parent_id, reported, report)
    else:
        stop_local_pools(STOP_TIMEOUT_S)
    return fleet_of(services.db, parent_id)


def _report_ended(
    services: Services,
    parent_id: str,
    reported: set[str],
    report: Callable[[AccountOutcome], None],
) -> bool:
    """Report the children that ended since last time; whether the whole fleet has."""
    for outcome in ended_children(services.db, parent_id):
        if outcome.sweep_id not in reported:
            reported.add(outcome.sweep_id or "")
            report(outcome)
    return run_status(services.db, parent_id) != RunStatus.RUNNING


def _show_counts(
    console: Console,
    settings: Settings,
    platform: StripeGateway,
    accounts: list[str],
    ask: FleetAsk,
) -> None:
    """The facts a user confirms: the platform, the mode, each account's open sessions, and
    what expiring them sets off."""
    total, effects = 0, []
    mode = "[bold red]LIVE[/bold red]" if platform.livemode else "test"
    console.print(f"platform  {platform.account} ({mode} mode)", soft_wrap=True, highlight=False)
    with console.status("counting open Checkout Sessions") as status:
        for account in accounts:
            status.update(f"counting open Checkout Sessions of {account}")
            try:
                found, effect = preview_open(
                    settings, platform.for_account(account), ask.asked.scope
                )
            except SweeperError as err:
                console.print(f"  {account}  refused: {err}", soft_wrap=True, highlight=False)
                continue
            total += found
            effects.append((account, effect))
            console.print(f"  {account}  {found} open", highlight=False)
    unread = len(accounts) - len(effects)
    refused = f" ({unread} could not be read: each fails alone)" if unread else ""
    console.print(
        f"found     {total} open Checkout Sessions in {len(effects)} accounts{refused}",
        highlight=False,
    )
    if total:
        console.print(said(summed_side_effects(effects)), markup=False, highlight=False)


def _answer(result: FleetResult, *, whole: bool) -> FleetAnswer:
    """The fleet's answer; a dry run's open sessions slimmed as for one account."""
    data = result.as_data()
    if result.dry_run and not whole:
        data["remaining_open_sessions"] = slimmed(data["remaining_open_sessions"])
    return data


def _reporter(console: Console, dry_run: bool) -> Callable[[AccountOutcome], None]:
    def report(outcome: AccountOutcome) -> None:
        shown = outcome.as_dict()
        done = "would expire" if dry_run else "expired"
        count = shown["would_expire_count" if dry_run else "expired_count"]
        line = f"{outcome.account}  {outcome.status}  {done} {count}"
        if outcome.error:
            line += f"  ({outcome.error})"
        console.print(line, soft_wrap=True, highlight=False, markup=False)

    return report


def _summary(result: FleetResult, dry_run: bool) -> None:
    done = "would expire" if dry_run else "expired"
    table = Table("account", "status", done, "already closed", "failed", "still open")
    for outcome in result.accounts:
        row = outcome.as_dict()
        remaining = row["remaining_open_count"]
        table.add_row(
            outcome.account,
            outcome.status,
            str(row["would_expire_count"] if dry_run else row["expired_count"]),
            str(row["already_closed_count"]),
            str(row["failed_count"]),
            "unknown" if remaining is None else str(remaining),
        )
    data = result.as_data()
    table.add_row(
        "all",
        result.status,
        str(data["would_expire_count"] if dry_run else data["expired_count"]),
        str(data["already_closed_count"]),
        str(len(data["failed"])),
        str(data["remaining_open_count"]),
    )
    table_console().print(table)
    click.echo(f"fleet sweep {result.sweep_id}: {result.status}", err=True)
