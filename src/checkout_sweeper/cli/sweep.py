"""``sweep``: the operator's door onto the same recorded sweep as the API.

Careful with a destructive action, like the tools people trust: on a terminal it lists first,
shows the account, the mode and what it found, and asks; ``--yes`` skips the question; with no
terminal and no ``--yes`` it refuses. ``--dry-run`` only reads: it never asks and works with
live-mode keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from checkout_sweeper.api_keys import key_problem
from checkout_sweeper.cli.confirm import confirm_or_exit
from checkout_sweeper.cli.context import (
    load_settings,
    open_database,
    print_json,
    quiet,
    table_console,
)
from checkout_sweeper.cli.display import (
    LiveProgress,
    show_plan,
    show_stopped,
    show_summary,
    slimmed,
)
from checkout_sweeper.cli.fleet import FleetAsk, sweep_fleet
from checkout_sweeper.cli.pushing import push_metrics
from checkout_sweeper.cli.scopes import scope_options
from checkout_sweeper.engine.scope import Scope
from checkout_sweeper.engine.side_effects import said
from checkout_sweeper.engine.tally import SweepProgress, SweepResult
from checkout_sweeper.errors import (
    AlreadySaid,
    InterruptedBeforeStart,
    LeaseLost,
    OutcomeShown,
    SessionsLeftOpen,
    SweepAborted,
    SweeperError,
    SweepInterrupted,
    UsageRefused,
)
from checkout_sweeper.runs.checks import OPERATOR, Services
from checkout_sweeper.runs.fleet.rows import FLEET_PARALLEL
from checkout_sweeper.runs.launch import (
    Asked,
    identified_gateway,
    preview_open,
)
from checkout_sweeper.runs.recorded_sweep import RecordedSweep
from checkout_sweeper.runs.submit import submit_sweep
from checkout_sweeper.settings import CONCURRENCY, MAX_RPS, ConfigError, Settings, budget
from checkout_sweeper.store.database import DEADLINE_S, Database
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import JsonObject

ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9]{1,64}")
INTERRUPTED = "the sweep was interrupted"
NO_TERMINAL = (
    "sweep expires sessions and asks before it does, but there is no terminal to ask on; "
    "add --yes to expire without asking (or --dry-run to only list)"
)


class SignalWatch:
    """Ctrl-C and SIGTERM alike: one "stopping" line at once, naming the sweep and what is in
    flight; then the running sweep is told to stop (dispatch stops; in-flight expires finish
    and are recorded), or, before one runs, ``KeyboardInterrupt`` in the main thread. Telling
    the sweep, rather than raising wherever the main thread happens to be, never leaves a lock
    taken. A second signal while stopping changes nothing."""

    def __init__(self) -> None:
        self.sweep: RecordedSweep | None = None
        self.console = Console(stderr=True)  # the progress bar's, once there is one
        self.stopping = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.sweep is None:
            raise KeyboardInterrupt
        self.console.print(  # above a progress bar, not into it
            f"stopping: {self.sweep.sweeper.in_flight} in flight, then sweep "
            f"{self.sweep.sweep_id} is recorded as interrupted",
            soft_wrap=True,
            highlight=False,
        )
        self.sweep.interrupt(INTERRUPTED)

    @contextlib.contextmanager
    def installed(self) -> Iterator[SignalWatch]:
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@click.command("sweep")
@click.option("--dry-run", is_flag=True, help="List what would be expired; expire nothing.")
@click.option("--yes", "-y", is_flag=True, help="Expire without asking (needed with no terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's data object.")
@scope_options
@click.option(
    "--all-accounts",
    is_flag=True,
    help="Sweep every connected account of the platform key (GET /v1/accounts), in parallel.",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="acct_...",
    help="Sweep this connected account of the platform key; repeat for several.",
)
@click.option(
    "--parallel",
    metavar="N",
    default=FLEET_PARALLEL,
    show_default=True,
    type=click.IntRange(1, 64),
    help="With --all-accounts or --account: accounts swept at once.",
)
@click.option(
    "--max-rps",
    default=None,
    metavar="R|auto",
    help=(
        "Stripe requests per second, or 'auto' "
        f"(default: {MAX_RPS.env}, else {MAX_RPS.shown_default})."
    ),
)
@click.option(
    "--full",
    is_flag=True,
    help="With --dry-run --json: whole Stripe objects in remaining_open_sessions.",
)
@click.option(
    "--concurrency",
    default=None,
    type=click.IntRange(1, 256),
    help=f"The most expires in flight at once; below it the pool sizes itself to the budget "
    f"and Stripe's latency (default: {CONCURRENCY.env}, else {CONCURRENCY.shown_default}).",
)
@click.option(
    "--api-key",
    default=None,
    metavar="KEY|@FILE|-",
    help="The Stripe key instead of STRIPE_API_KEY: the key, @FILE to read it from a file, or "
    "- for standard input (neither lands in shell history). Never printed.",
)
def sweep_command(
    dry_run: bool,
    yes: bool,
    as_json: bool,
    scope: Scope,
    all_accounts: bool,
    accounts: tuple[str, ...],
    parallel: int,
    max_rps: str | None,
    full: bool,
    concurrency: int | None,
    api_key: str | None,
) -> None:
    """Expire the open Checkout Sessions of the account in STRIPE_API_KEY: every one, or
    those in a scope; or of the key's connected accounts (--all-accounts, --account).

    \b
    Exit status:
      0    nothing failed and nothing is left open
      1    sessions failed or remain open (or the question was answered no)
      2    bad arguments or configuration; no terminal to ask on and no --yes
      3    Stripe or the database could not be used
      4    another sweep holds the account (or took it)
      5    the audit trail could not be written (the journal named keeps everything)
      6    a fleet sweep in part: some accounts could not be swept, the others were
      130  interrupted (Ctrl-C or SIGTERM)
    """
    with SignalWatch().installed() as watch:
        try:
            settings = _asked_settings(max_rps, concurrency, api_key)
            if all_accounts or accounts:
                _require_key(settings)
                asked = Asked(scope, dry_run)
                fleet = FleetAsk(
                    _fleet_of(all_accounts, accounts), asked, yes, as_json, parallel, full
                )
                sweep_fleet(settings, fleet, NO_TERMINAL)
                return
            _sweep(settings, Plan(dry_run, yes, as_json, scope, full), watch)
        except AlreadySaid:
            raise  # the command said how it ended, --json included
        except SweeperError as err:  # nothing could start: --json still says so, in one object
            if as_json:
                print_json(_not_started(dry_run, str(err)))
            raise
        except (KeyboardInterrupt, click.exceptions.Abort):  # listing, or at the prompt
            click.echo("stopping: interrupted before any session was expired", err=True)
            if as_json:
                print_json(_not_started(dry_run, "interrupted"))
            raise InterruptedBeforeStart("interrupted before any session was expired") from None


def _fleet_of(all_accounts: bool, accounts: tuple[str, ...]) -> tuple[str, ...]:
    """The accounts named (none: every connected one); both, or a malformed id, is exit 2."""
    if all_accounts and accounts:
        raise click.UsageError("give --all-accounts or --account, not both")
    for account in accounts:
        if not ACCOUNT_ID.fullmatch(account):
            raise click.BadParameter(f"expected acct_..., got {account!r}", param_hint="--account")
    return tuple(dict.fromkeys(accounts))


def _answer(result: SweepResult, *, whole: bool) -> dict[str, object]:
    """The endpoint's data object; a dry run's open sessions slimmed (``slimmed``)."""
    data = result.as_data()
    if result.dry_run and not whole:
        data["remaining_open_sessions"] = slimmed(result.remaining_open_sessions)
    return data


def _not_started(dry_run: bool, error: str) -> dict[str, object]:
    """The answer's shape with what is known: nothing expired; what is left open, unknown."""
    data = SweepResult(sweep_id="", dry_run=dry_run).as_data()
    unknown = ["sweep_id", "stripe_requests", "duration_ms", "passes", "remaining_open_count"]
    unknown.append("out_of_scope_open_count")
    return {**data, **dict.fromkeys(unknown), "error": error}


def json_failure(argv: list[str], error: str) -> dict[str, object]:
    """``--json``'s one object when the command line itself was refused (a bad option)."""
    return _not_started("--dry-run" in argv, error)


def _asked_settings(max_rps: str | None, concurrency: int | None, api_key: str | None) -> Settings:
    """The settings, with what the command line asked for in place of the variables."""
    settings = load_settings()
    if api_key is not None:
        key = _read_key(api_key)
        problem = key_problem(key, "--api-key")
        if problem is not None:
            raise UsageRefused(problem)
        settings = dataclasses.replace(settings, stripe_api_key=key)
    if concurrency is not None:
        settings = dataclasses.replace(settings, concurrency=concurrency)
    if max_rps is not None:
        try:
            settings = dataclasses.replace(settings, max_rps=budget("the budget", max_rps))
        except ConfigError as err:
            raise click.BadParameter(str(err), param_hint="--max-rps") from None
    return settings


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the command line asked of this sweep."""

    dry_run: bool
    yes: bool
    as_json: bool
    scope: Scope
    full: bool = False

    @property
    def asking(self) -> bool:
        return not self.dry_run and not self.yes


def _sweep(settings: Settings, plan: Plan, watch: SignalWatch) -> None:
    _require_key(settings)
    if plan.asking and not sys.stdin.isatty():
        raise UsageRefused(NO_TERMINAL)
    db = open_database(settings)
    console = Console(stderr=True, quiet=quiet() and not plan.asking)
    gateway = identified_gateway(settings, db, dry_run=plan.dry_run)
    total = None
    plan = dataclasses.replace(plan, scope=plan.scope.resolved(time.time()))  # one cutoff
    if plan.asking or console.is_terminal:
        total, effects = _count(console, settings, gateway, plan.scope)
        show_plan(console, gateway.account, gateway.livemode, db.safe_url, total, plan.scope)
        if total:
            console.print(said(effects), markup=False, highlight=False)
    if plan.asking and total:
        confirm_or_exit(gateway, f"Expire all {total}")
    console.quiet = quiet()
    try:
        result = _expire_confirmed(settings, db, gateway, console, plan, total, watch)
    finally:
        push_metrics(settings.pushgateway)
    if plan.as_json:
        print_json(_answer(result, whole=plan.full))
    elif not quiet():
        show_summary(table_console(), console, result, db.safe_url)
    if not result.succeeded:
        raise SessionsLeftOpen(f"sweep {result.sweep_id} left sessions failed or open")


def _count(
    console: Console, settings: Settings, gateway: StripeGateway, scope: Scope
) -> tuple[int, JsonObject]:
    """The open sessions in scope, with a spinner and the count so far while Stripe lists,
    and what expiring them sets off."""
    with console.status("listing open Checkout Sessions") as status:

        def found(progress: SweepProgress) -> None:
            status.update(f"listing open Checkout Sessions: {progress.found} found")

        return preview_open(settings, gateway, scope, on_progress=found)


def _read_key(given: str) -> str:
    """The key itself, or read from @FILE or standard input (-), without its line end."""
    if given == "-":
        return sys.stdin.readline().strip()
    if given.startswith("@"):
        try:
            return Path(given[1:]).read_text().strip()
        except OSError as err:
            raise UsageRefused(f"--api-key: {err.strerror}: {given[1:]}") from None
    return given


def _require_key(settings: Settings) -> None:
    problem = key_problem(settings.stripe_api_key)
    if problem is not None:
        raise UsageRefused(problem)


def _expire_confirmed(
    settings: Settings,
    db: Database,
    gateway: StripeGateway,
    console: Console,
    plan: Plan,
    total: int | None,
    watch: SignalWatch,
) -> SweepResult:
    live = None
    if console.is_terminal and not console.quiet:
        live = LiveProgress(console, plan.dry_run, total)
        watch.console = console
    try:
        with live.bar if live else contextlib.nullcontext():
            watch.sweep = _leased(settings, db, gateway, plan, live)
            return watch.sweep.run()
    except SweepAborted as stopped:
        _stopped_early(console, stopped, plan.as_json)


def _leased(
    settings: Settings,
    db: Database,
    gateway: StripeGateway,
    plan: Plan,
    live: LiveProgress | None,
) -> RecordedSweep:
    """The lease and the run row, in bounded time (a database that does not answer is exit 3);
    the sweep itself then takes the time it takes."""
    db.deadlines.arm(DEADLINE_S)
    try:
        submitted = submit_sweep(
            OPERATOR,
            Services(settings, db),
            Asked(plan.scope, plan.dry_run),
            in_thread=True,
            on_progress=live.update if live else None,
            gateway=gateway,
        )
    finally:
        db.deadlines.disarm()
    assert submitted.sweep is not None  # asked to run in this thread
    return submitted.sweep


def _stopped_early(console: Console, stopped: SweepAborted, as_json: bool) -> NoReturn:
    """Say what was done before the sweep stopped; the command ends with the reason's code."""
    if isinstance(stopped, SweepInterrupted):
        headline = "[yellow]interrupted:[/yellow] the run is recorded as interrupted"
    elif isinstance(stopped, LeaseLost):
        headline = f"[red]stopped:[/red] {stopped}"
    else:  # an error: the one line every error is (JSON with --log-format json; -v: traceback)
        from checkout_sweeper.cli import say_error

        headline = ""
        say_error(stopped)
    show_stopped(console, headline, stopped.result)
    if as_json and stopped.result is not None:
        print_json({**stopped.result.as_data(), "error": str(stopped)})
    raise OutcomeShown(str(stopped), stopped) from stopped
