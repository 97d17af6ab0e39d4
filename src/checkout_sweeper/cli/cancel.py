"""``sweeps cancel``: stop a queued or running sweep wherever it runs, as ``DELETE
/v1/sweeps/{id}`` does (a sweep in the foreground stops with Ctrl-C)."""

from __future__ import annotations

import click

from checkout_sweeper.cli.context import load_settings, open_database, print_json
from checkout_sweeper.cli.history import the_run
from checkout_sweeper.errors import AlreadyEnded, StillStopping
from checkout_sweeper.runs.cancel import cancel_run
from checkout_sweeper.runs.rows import ENDED, OPERATOR, wait_while_pending
from checkout_sweeper.vocabulary import RunStatus

WAIT_S = 5.0  # how long the command waits for the sweep to say it is canceled


@click.group("sweeps")
def sweeps_group() -> None:
    """Act on recorded sweeps (see `history` to list them)."""


@sweeps_group.command("cancel")
@click.argument("sweep_id")
@click.option("--json", "as_json", is_flag=True, help="Print the sweep's id and status.")
def cancel_command(sweep_id: str, as_json: bool) -> None:
    """Cancel a queued or running sweep (SWEEP_ID, or 4+ of its first characters): it sends
    nothing more to Stripe, records what was in flight and is never resumed."""
    db = open_database(load_settings())
    run = the_run(db, sweep_id.strip())
    if run.status in (*ENDED, RunStatus.CANCELED):
        raise AlreadyEnded(f"sweep {run.id} already ended ({run.status}): nothing to cancel")
    cancel_run(db, run.id, OPERATOR)
    status = wait_while_pending(db, run.id, WAIT_S)
    if as_json:
        print_json({"sweep_id": run.id, "status": status})
    elif status == RunStatus.CANCELED:
        click.echo(f"sweep {run.id} canceled")
    else:
        click.echo(f"sweep {run.id} asked to cancel; it is still stopping ({status})")
    if status != RunStatus.CANCELED:
        raise StillStopping(f"sweep {run.id} is still stopping ({status})")
