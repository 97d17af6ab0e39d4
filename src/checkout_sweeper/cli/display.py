"""What ``sweep`` shows: the plan it asks about, a progress bar, the summary, an early stop.

Everything for people goes to stderr except the summary table and ``--json`` (stdout). Long
ids and keys are printed whole on lines of their own (``soft_wrap``), never wrapped mid-word.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from checkout_sweeper.engine.scope import SCOPE_FIELDS, Form, Scope
from checkout_sweeper.engine.side_effects import said
from checkout_sweeper.engine.tally import SweepProgress, SweepResult
from checkout_sweeper.vocabulary import JsonObject


def moment_text(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def scope_text(scope: Scope) -> str:
    """The scope in words, after "open Checkout Sessions" (empty for every session), each
    field as the engine's table shows it."""
    parts = []
    for field in SCOPE_FIELDS:
        value = getattr(scope, field.name)
        hidden = field.hidden_by is not None and getattr(scope, field.hidden_by) is not None
        if value is not None and value != () and not hidden:
            parts.append(field.shown.format(_value_text(field.form, value)))
    return "".join(" " + part for part in parts)


def _value_text(form: Form, value: Any) -> str:
    if form is Form.MOMENT:
        return moment_text(value)
    if form is Form.PAIRS:
        return ", ".join(f"{key}={item}" for key, item in value)
    return str(value)


def show_plan(
    console: Console, account: str, livemode: bool, database: str, found: int, scope: Scope
) -> None:
    """The facts a user confirms: which account, which mode, how many sessions."""
    mode = "[bold red]LIVE[/bold red]" if livemode else "test"
    console.print(f"account   {account} ({mode} mode)", soft_wrap=True, highlight=False)
    console.print(f"database  {database}", soft_wrap=True, highlight=False)
    console.print(
        f"found     {found} open Checkout Sessions{scope_text(scope)}",
        soft_wrap=True,
        highlight=False,
    )


class LiveProgress:
    """A bar on stderr that fits 80 columns: handled of found, outcomes, rate, time left."""

    def __init__(self, console: Console, dry_run: bool, total: int | None) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=12),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.dry_run = dry_run
        self.total = total
        label = "listing" if dry_run or total is None else "expiring"
        self.task = self.bar.add_task(label, total=total, detail="")

    def update(self, p: SweepProgress) -> None:
        if self.dry_run:
            self.bar.update(self.task, total=None, completed=p.found, detail="")
            return
        total = max(self.total or 0, p.found)
        detail = f"expired {p.expired} closed {p.already_closed} failed {p.failed} {p.rate:.1f}/s"
        self.bar.update(
            self.task, description="expiring", total=total, completed=p.handled, detail=detail
        )


def show_summary(out: Console, note: Console, result: SweepResult, database: str) -> None:
    """The summary table on stdout; the sweep id, database and failures on lines of their own."""
    note.print(
        f"sweep {result.sweep_id}" + (" (dry run)" if result.dry_run else ""), soft_wrap=True
    )
    note.print(f"database {database}", soft_wrap=True, highlight=False)
    table = Table("measure", "value")
    table.columns[1].justify = "right"
    done = len(result.would_expire) if result.dry_run else result.expired_count
    rows = [
        ("would expire" if result.dry_run else "expired", done),
        ("already closed", result.already_closed_count),
        ("failed", len(result.failed)),
        (
            "still open",
            "unknown" if result.remaining_open_count is None else result.remaining_open_count,
        ),
        ("Stripe requests", result.stripe_requests),
        ("429s received", result.rate_limited),
        ("passes", result.passes),
        ("duration", f"{result.duration_ms / 1000:.1f} s"),
    ]
    if result.scope and result.out_of_scope_open_count is not None:
        rows.append(("open, out of scope", result.out_of_scope_open_count))
    if result.limit_reached:
        rows.append(("stopped at the limit", str(result.scope.get("limit"))))
    for name, value in rows:
        table.add_row(name, str(value))
    out.print(table)
    for failure in result.failed[:20]:
        out.print(f"failed {failure['id']}: {failure['error']}", soft_wrap=True, highlight=False)
    if result.dry_run:
        for session_id in result.would_expire[:50]:
            out.print(f"would expire {session_id}", soft_wrap=True, highlight=False)
        if len(result.would_expire) > 50:
            out.print(f"... and {len(result.would_expire) - 50} more (use --json for all)")
    effects = result.side_effects
    if effects and effects["expired_events"] and not (result.dry_run and note.is_terminal):
        # what the expiries set off (a terminal's dry run said it before it listed them)
        note.print(said(effects, done=not result.dry_run), markup=False)


def show_stopped(console: Console, headline: str, result: SweepResult | None) -> None:
    """What an early stop leaves behind: the reason (unless said already), the sweep id and
    the counts so far."""
    if headline:
        console.print(headline, soft_wrap=True, highlight=False)
    if result is not None:
        console.print(f"sweep {result.sweep_id}", soft_wrap=True, highlight=False)
        console.print(
            f"done before it stopped: {result.expired_count} expired, "
            f"{result.already_closed_count} already closed, {len(result.failed)} failed",
            highlight=False,
        )


SLIM_FIELDS = ("id", "created", "amount_total", "currency", "customer", "url", "expires_at")


def slimmed(sessions: list[JsonObject]) -> list[JsonObject]:
    """Open sessions with the fields a person decides by (a whole Checkout Session is about
    3 KB), and the account of each in a fleet's answer; ``--full`` keeps them whole."""
    return [
        {name: session.get(name) for name in SLIM_FIELDS}
        | ({"account": session["account"]} if "account" in session else {})
        for session in sessions
    ]
