"""``history`` and ``history show``: the audit trail, run by run and session by session."""

from __future__ import annotations

import re
from datetime import datetime

import click
from rich import box
from rich.console import Console
from rich.table import Table

from checkout_sweeper.cli.context import load_settings, open_database, print_json, table_console
from checkout_sweeper.cli.moments import parse_since
from checkout_sweeper.engine.side_effects import said
from checkout_sweeper.errors import NotFound, UsageRefused
from checkout_sweeper.runs.rows import MIN_PREFIX, recent_runs, run_sessions, runs_matching
from checkout_sweeper.runs.run import CountedRun, RunView
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import utc_iso
from checkout_sweeper.vocabulary import Outcome, RunStatus, values

MATCHES_SHOWN = 10
SHOWN_FIELDS = (
    "status",
    "account",
    "queued_at",
    "started_at",
    "finished_at",
    "attempts",
    "worker",
    "error",
)


def _started_by(run: RunView) -> str:
    """``api:4``, ``cli``, or for a removed user ``api:4 <alice@example.com> (removed)``."""
    if run.removed_user_id is not None:
        return f"{run.trigger}:{run.removed_user_id} <{run.removed_user_email}> (removed)"
    return run.trigger + (f":{run.user_id}" if run.user_id else "")


def _status(listed: CountedRun) -> str:
    """``succeeded``, ``running (12 pending)``, ``succeeded (2 attempts)``."""
    run = listed.run
    notes = [f"{listed.pending} pending"] if listed.pending else []
    if run.attempts > 1:
        notes.append(f"{run.attempts} attempts")
    return run.status + (f" ({', '.join(notes)})" if notes else "")


def _worker(run: RunView) -> str:
    worker = run.worker
    return "-" if worker is None else f"{worker.host}:{worker.pid}"


def _time(moment: datetime | None) -> str:
    """UTC with its zone, to the second: 2026-12-01 04:35:51Z."""
    value = utc_iso(moment)
    return str(value or "-")[:19].replace("T", " ") + ("Z" if value else "")


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{float(seconds):.1f} s"


WIDE_TABLE = 150  # columns: a narrower terminal gets the columns a run is found by and judged by


def _runs_table(runs: list[CountedRun], *, wide: bool) -> Table:
    """One row per run; ``wide`` adds who started it, the account, the mode and the counts of
    closed and failed sessions (``--json`` has everything)."""
    table = Table(box=box.HEAVY_HEAD if wide else None, pad_edge=wide)
    table.add_column("started (UTC)" if wide else "started UTC", no_wrap=True)
    table.add_column("id", no_wrap=True, min_width=12)
    extra = ("by", "account", "mode") if wide else ()
    for name in extra:
        table.add_column(name, overflow="fold")
    table.add_column("status", no_wrap=True)
    for name in ("expired", "closed", "failed") if wide else ("expired",):
        table.add_column(name, justify="right", no_wrap=True)
    for name in ("left", "took"):
        table.add_column(name, justify="right", no_wrap=True)
    for listed in runs:
        run = listed.run
        done = f"would {run.found_count}" if run.dry_run else str(run.expired_count)
        left = "-" if run.remaining_count is None else str(run.remaining_count)
        mode = ("LIVE" if run.livemode else "test") + (" dry" if run.dry_run else "")
        who = (_started_by(run), run.account, mode) if wide else ()
        counts = (done, str(run.already_closed_count), str(run.failed_count)) if wide else (done,)
        started = _time(run.started_at) if wide else _time(run.started_at)[5:16]
        table.add_row(
            started, run.id[:12], *who, _status(listed), *counts, left, _duration(run.duration_s)
        )
    return table


@click.group("history", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as one JSON array.")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="At most N runs."
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(values(RunStatus)),
    help="Only runs with this status (repeatable).",
)
@click.option(
    "--since",
    default=None,
    metavar="DURATION|ISO|EPOCH",
    help="Only runs started since then: 2h, 1d (ago), or a moment.",
)
@click.pass_context
def history_group(
    context: click.Context,
    as_json: bool,
    limit: int,
    statuses: tuple[str, ...],
    since: str | None,
) -> None:
    """Recent sweeps, newest first; a run whose process died shows as interrupted.

    A terminal narrower than 150 columns shows when, the id, the status and the counts that
    judge a run; a wider one (or a pipe) adds who, the account, the mode, closed and failed;
    --json has every field."""
    if context.invoked_subcommand is not None:
        return
    start = parse_since(since) if since is not None else None
    db = open_database(load_settings())
    runs = recent_runs(db, limit, statuses=statuses, since=start)
    if as_json:
        print_json([listed.as_json() for listed in runs])
        return
    Console(stderr=True).print(f"database {db.safe_url}", soft_wrap=True, highlight=False)
    out = table_console()
    out.print(_runs_table(runs, wide=out.width >= WIDE_TABLE))
    for run in (listed.run for listed in runs):
        if run.error:
            out.print(f"{run.id[:12]}: {run.error}", soft_wrap=True)


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
    """One sweep and what happened to each of its sessions (SWEEP_ID, or 4+ of its first
    characters when only one sweep starts so)."""
    db = open_database(load_settings())
    run = the_run(db, sweep_id.strip())
    sessions = run_sessions(db, run.id, outcomes=outcomes)
    if as_json:
        print_json({**run.as_json(), "sessions": sessions})
        return
    out = table_console()
    out.print(f"sweep {run.id}", soft_wrap=True, highlight=False)
    shown = {**run.as_json(), "worker": _worker(run)}
    for name in SHOWN_FIELDS:
        out.print(f"{name:<12}{shown[name] if shown[name] is not None else '-'}", soft_wrap=True)
    effects = (run.result or {}).get("side_effects")
    if isinstance(effects, dict):  # what its expiries set off, as its answer says
        out.print(said(effects, done=not run.dry_run), soft_wrap=True, markup=False)
    table = Table("session", "outcome", "attempts", "error")
    for row in sessions:
        table.add_row(row["session_id"], row["outcome"], str(row["attempts"]), row["error"] or "")
    out.print(table)


def the_run(db: Database, wanted: str) -> RunView:
    """The one run an id or prefix names (in any case); exit 2 saying why not (too short,
    none, several)."""
    wanted = wanted.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{1,32}", wanted):
        raise UsageRefused(f"{wanted!r} is not a sweep id (32 hex digits)")
    matches = runs_matching(db, wanted, MATCHES_SHOWN)
    if len(matches) == 1:
        return matches[0]
    if len(wanted) < MIN_PREFIX:
        reason = f"give at least {MIN_PREFIX} characters of the id"
    elif matches:
        candidates = ", ".join(f"{run.id} ({_time(run.started_at)})" for run in matches)
        more = "+" if len(matches) == MATCHES_SHOWN else ""
        reason = f"{len(matches)}{more} sweeps start so: {candidates}"
    else:
        reason = "see `checkout-sweeper history`"
    raise NotFound(f"no single sweep {wanted!r} on record: {reason}")
