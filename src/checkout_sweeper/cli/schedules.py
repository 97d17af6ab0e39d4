"""``schedules``: recurring scoped sweeps kept in the database and run by ``worker``
processes, once per slot (the same as ``/v1/schedules``)."""

from __future__ import annotations

import click
from rich.table import Table

from checkout_sweeper.cli.context import load_settings, open_database, print_json, table_console
from checkout_sweeper.cli.display import scope_text
from checkout_sweeper.cli.scopes import scope_options
from checkout_sweeper.engine.scope import Scope, parse_scope
from checkout_sweeper.errors import NotFound, ScheduleInvalid
from checkout_sweeper.runs.schedules import (
    Cadence,
    ScheduleJson,
    add_schedule,
    list_schedules,
    remove_schedule,
)
from checkout_sweeper.store.database import Database


@click.group("schedules")
def schedules_group() -> None:
    """Recurring scoped sweeps, run by `checkout-sweeper worker` once per slot."""


@schedules_group.command("add")
@click.option(
    "--every", default=None, metavar="DURATION", help="A period: 15m, 1h, 1d (1m at least)."
)
@click.option(
    "--cron",
    default=None,
    metavar='"M H DOM MON DOW"',
    help='A cron expression in UTC: "0 3 * * *".',
)
@scope_options
@click.option("--dry-run", is_flag=True, help="Each run only lists what it would expire.")
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
def add_command(
    every: str | None,
    cron: str | None,
    scope: Scope,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Add a schedule: every period (--every) or on a cron expression (--cron), with the
    same scope options as `sweep`."""
    try:
        cadence = Cadence.read(every.strip().lower() if every else every, cron)
    except ScheduleInvalid as err:
        raise click.UsageError(str(err)) from None
    db = open_database(load_settings())
    schedule = add_schedule(db, cadence, scope, dry_run=dry_run, user_id=None)
    if as_json:
        print_json(schedule)
        return
    click.echo(f"schedule {schedule['id']} added: {_when(schedule)}{scope_text(scope)}")
    click.echo("a running `checkout-sweeper worker` starts its sweeps", err=True)


@schedules_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list.")
def list_command(as_json: bool) -> None:
    """Every schedule, oldest first, with the last slot that ran."""
    schedules = list_schedules(open_database(load_settings()))
    if as_json:
        print_json(schedules)
        return
    table = Table("id", "when", "scope", "dry run", "last slot", "owner")
    for schedule in schedules:
        table.add_row(
            schedule["id"],
            _when(schedule),
            scope_text(parse_scope(schedule["scope"])).strip() or "every open session",
            "yes" if schedule["dry_run"] else "no",
            schedule["last_slot_at"] or "-",
            "command line" if schedule["user_id"] is None else f"user {schedule['user_id']}",
        )
    table_console().print(table)


@schedules_group.command("remove")
@click.argument("schedule_id")
def remove_command(schedule_id: str) -> None:
    """Remove a schedule (SCHEDULE_ID, or sch_ and 4+ of its first characters when only one
    schedule starts so); sweeps it started stay in the history."""
    db = open_database(load_settings())
    chosen = _the_schedule(db, schedule_id.strip())
    if not remove_schedule(db, chosen):
        raise NotFound(f"no schedule {schedule_id!r} (see `schedules list`)")
    click.echo(f"schedule {chosen} removed")


MIN_PREFIX = 4  # hex digits after sch_, as `history show` asks of a sweep id


def _the_schedule(db: Database, wanted: str) -> str:
    """The one schedule an id or prefix (with or without ``sch_``) names; why not, if not."""
    digits = wanted.removeprefix("sch_")
    matches = [s["id"] for s in list_schedules(db) if s["id"].startswith(f"sch_{digits}")]
    if len(matches) == 1 and (len(digits) >= MIN_PREFIX or matches[0] == wanted):
        return matches[0]
    if len(digits) < MIN_PREFIX:
        reason = f"give sch_ and at least {MIN_PREFIX} characters of the id"
    elif matches:
        reason = f"{len(matches)} schedules start so: {', '.join(matches[:5])}"
    else:
        reason = "see `schedules list`"
    raise NotFound(f"no schedule {wanted!r}: {reason}")


def _when(schedule: ScheduleJson) -> str:
    if schedule["every"] is not None:
        return f"every {_period(schedule['every'])}"
    return f"cron {schedule['cron']!r} (UTC)"


def _period(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
