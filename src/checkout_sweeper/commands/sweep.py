"""``sweep`` and ``history``: the operator's door onto the same recorded sweep as the API."""

from __future__ import annotations

import contextlib
import signal
import sys
from datetime import UTC, datetime
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..audit_store import recent_runs
from ..configured import configured_sweep
from ..errors import (
    AuditError,
    LeaseLost,
    LiveModeRefused,
    SweepAborted,
    SweepInProgress,
    SweepInterrupted,
)
from ..tally import SweepProgress, SweepResult
from .common import (
    EXIT_AUDIT,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_USAGE,
    Failure,
    load_settings,
    open_database,
    print_json,
    table_console,
)


def parse_moment(value: str) -> int:
    """An epoch in seconds, or an ISO 8601 date/time (UTC when no offset is given)."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO 8601 time (2026-11-29T12:00:00Z) or epoch seconds, got {value!r}",
            param_hint="--created-before",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


class _LiveProgress:
    """A progress bar on stderr that fits 80 columns: handled/found, outcomes, current rate."""

    def __init__(self, console: Console, dry_run: bool) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.dry_run = dry_run
        self.task = self.bar.add_task("listing" if dry_run else "expiring", total=None, detail="")

    def update(self, p: SweepProgress) -> None:
        if self.dry_run:
            self.bar.update(self.task, total=p.found, completed=p.found, detail="")
            return
        self.bar.update(
            self.task,
            total=p.found,
            completed=p.handled,
            detail=(
                f"expired {p.expired} closed {p.already_closed} failed {p.failed} {p.rate:.1f}/s"
            ),
        )


def _summary(console: Console, result: SweepResult) -> None:
    table = Table(title=f"sweep {result.sweep_id}" + (" (dry run)" if result.dry_run else ""))
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        (
            "would expire" if result.dry_run else "expired",
            result.expired_count if not result.dry_run else len(result.would_expire),
        ),
        ("already closed", result.already_closed_count),
        ("failed", len(result.failed)),
        ("still open", result.remaining_open_count),
        ("Stripe requests", result.stripe_requests),
        ("429s received", result.rate_limited),
        ("passes", result.passes),
        ("duration", f"{result.duration_ms / 1000:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    for failure in result.failed[:20]:
        console.print(f"[red]failed[/red] {failure['id']}: {failure['error']}")
    if result.dry_run:
        for session_id in result.would_expire[:50]:
            console.print(f"would expire {session_id}")
        if len(result.would_expire) > 50:
            console.print(f"... and {len(result.would_expire) - 50} more (use --json for all)")


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM behaves like Ctrl-C: stop dispatching, let in-flight expires finish, record."""
    raise KeyboardInterrupt


@click.command("sweep")
@click.option("--dry-run", is_flag=True, help="List what would be expired; expire nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's data object.")
@click.option(
    "--created-before",
    default=None,
    help="Only sessions created before this moment (ISO 8601 or epoch seconds).",
)
def sweep_command(dry_run: bool, as_json: bool, created_before: str | None) -> None:
    """Expire every open Checkout Session of the account in STRIPE_API_KEY.

    Exit status: 0 when nothing failed and nothing is left open; 1 when sessions failed or
    remain open; 2 on bad input or configuration; 3 when Stripe or the database could not be
    used; 4 when another sweep holds the account (or took it); 5 when the audit trail could
    not be written (the journal named keeps every outcome); 130 when interrupted.
    """
    cutoff = parse_moment(created_before) if created_before else None
    settings = load_settings()
    if not settings.stripe_api_key:
        raise Failure("STRIPE_API_KEY is not set: export the key of the account to sweep", 2)
    db = open_database(settings)
    console = Console(stderr=True)
    signal.signal(signal.SIGTERM, _interrupt)
    live = _LiveProgress(console, dry_run) if console.is_terminal else None
    try:
        with live.bar if live else contextlib.nullcontext():
            result = configured_sweep(
                settings,
                db,
                trigger="cli",
                dry_run=dry_run,
                created_before=cutoff,
                on_progress=live.update if live else None,
            )
    except LiveModeRefused as refusal:
        raise Failure(str(refusal), EXIT_USAGE) from None
    except SweepInProgress:
        raise Failure("a sweep of this Stripe account is already running", EXIT_BUSY) from None
    except SweepAborted as stopped:
        _stopped_early(console, stopped, as_json)
    except AuditError as err:
        raise Failure(str(err), EXIT_AUDIT) from None
    if as_json:
        print_json(result.as_data())
    else:
        _summary(table_console(), result)
    sys.exit(0 if result.succeeded else EXIT_FAILED)


def _stopped_early(console: Console, stopped: SweepAborted, as_json: bool) -> NoReturn:
    """Say what was done before the sweep stopped, then exit with the code of the reason."""
    if isinstance(stopped, SweepInterrupted):
        headline, code = "[yellow]interrupted:[/yellow] the run is recorded as interrupted", 130
    elif isinstance(stopped, LeaseLost):
        headline, code = f"[red]stopped:[/red] {stopped}", EXIT_BUSY
    else:
        headline, code = f"[red]error:[/red] Stripe could not be used: {stopped}", 3
    console.print(headline, highlight=False)
    if stopped.result is not None:
        done = stopped.result
        console.print(
            f"done before it stopped: {done.expired_count} expired, "
            f"{done.already_closed_count} already closed, {len(done.failed)} failed",
            highlight=False,
        )
        if as_json:
            print_json({**done.as_data(), "error": str(stopped)})
    sys.exit(code)


@click.command("history")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def history_command(as_json: bool, limit: int) -> None:
    """Recent sweeps, newest first; a run whose process died shows as interrupted."""
    runs = recent_runs(open_database(load_settings()), limit)
    if as_json:
        print_json(runs)
        return
    table = Table("started", "id", "by", "status", "expired", "closed", "failed", "left", "mode")
    for run in runs:
        table.add_row(
            run["started_at"][:19],
            run["id"][:12],
            run["trigger"] + (f":{run['user_id']}" if run["user_id"] else ""),
            run["status"] + (f" ({run['pending']} pending)" if run["pending"] else ""),
            str(run["expired_count"]),
            str(run["already_closed_count"]),
            str(run["failed_count"]),
            "-" if run["remaining_count"] is None else str(run["remaining_count"]),
            ("live" if run["livemode"] else "test") + (" dry" if run["dry_run"] else ""),
        )
    table_console().print(table)
