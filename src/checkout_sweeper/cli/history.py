"""``history`` and ``history show``: the audit trail, run by run and session by session."""

from __future__ import annotations

import re

import click
from rich.console import Console
from rich.table import Table

from checkout_sweeper.cli.context import load_settings, open_database, print_json, table_console
from checkout_sweeper.errors import CommandFailure, ExitCode
from checkout_sweeper.runs.rows import find_run, recent_runs, run_sessions
from checkout_sweeper.vocabulary import Outcome, values


def _started_by(run: dict) -> str:
    """``api:4``, ``cli``, or for a removed user ``api:4 <alice@example.com> (removed)``."""
    if run["removed_user_id"] is not None:
        return f"{run['trigger']}:{run['removed_user_id']} <{run['removed_user_email']}> (removed)"
    return str(run["trigger"]) + (f":{run['user_id']}" if run["user_id"] else "")


def _time(value: object) -> str:
    """UTC with its zone, to the second: 2026-12-01 04:35:51Z."""
    return str(value or "-")[:19].replace("T", " ") + ("Z" if value else "")


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{float(seconds):.1f} s"


@click.group("history", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as one JSON array.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.pass_context
def history_group(context: click.Context, as_json: bool, limit: int) -> None:
    """Recent sweeps, newest first; a run whose process died shows as interrupted."""
    if context.invoked_subcommand is not None:
        return
    db = open_database(load_settings())
    runs = recent_runs(db, limit)
    if as_json:
        print_json(runs)
        return
    Console(stderr=True).print(f"database {db.safe_url}", soft_wrap=True, highlight=False)
    table = Table("started (UTC)", "id", "by", "account", "mode", "status", "expired")
    for name in ("closed", "failed", "left", "took"):
        table.add_column(name, justify="right")
    for run in runs:
        table.add_row(
            _time(run["started_at"]),
            str(run["id"])[:12],
            _started_by(run),
            str(run["account"]),
            ("LIVE" if run["livemode"] else "test") + (" dry" if run["dry_run"] else ""),
            str(run["status"]) + (f" ({run['pending']} pending)" if run["pending"] else ""),
            str(run["expired_count"]),
            str(run["already_closed_count"]),
            str(run["failed_count"]),
            "-" if run["remaining_count"] is None else str(run["remaining_count"]),
            _duration(run["duration_s"]),
        )
    table_console().print(table)
    for run in runs:
        if run["error"]:
            table_console().print(f"{str(run['id'])[:12]}: {run['error']}", soft_wrap=True)


@history_group.command("show")
@click.argument("sweep_id")
@click.option("--json", "as_json", is_flag=True, help="The run and its sessions as JSON.")
@click.option(
    "--outcome",
    "outcomes",
    multiple=True,
    type=click.Choice(values(Outcome)),
    help="Only sessions with this outcome (repeatable).",
)
def show_command(sweep_id: str, as_json: bool, outcomes: tuple[str, ...]) -> None:
    """One sweep and what happened to each of its sessions (SWEEP_ID or a unique prefix)."""
    db = open_database(load_settings())
    wanted = sweep_id.strip()
    run = find_run(db, wanted) if re.fullmatch(r"[0-9a-f]{1,32}", wanted) else None
    if run is None:
        raise CommandFailure(
            f"no sweep {sweep_id!r} on record (see `checkout-sweeper history`)", ExitCode.USAGE
        )
    sessions = run_sessions(db, str(run["id"]), outcomes=outcomes)
    if as_json:
        print_json({**run, "sessions": sessions})
        return
    out = table_console()
    out.print(f"sweep {run['id']}", soft_wrap=True, highlight=False)
    for name in ("status", "account", "started_at", "finished_at", "error"):
        out.print(f"{name:<12}{run[name] if run[name] is not None else '-'}", soft_wrap=True)
    table = Table("session", "outcome", "attempts", "error")
    for row in sessions:
        table.add_row(row["session_id"], row["outcome"], str(row["attempts"]), row["error"] or "")
    out.print(table)
