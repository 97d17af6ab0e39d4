"""Canceling a sweep, from any door (``DELETE /v1/sweeps/{id}``, ``sweeps cancel``): a queued
one at once, a running one by a flag its process reads within a second; a fleet's children
with it (queued ones never start, running ones stop), and the fleet's parent settled
``canceled`` for good once they have ended."""

from __future__ import annotations

from sqlalchemy import select

from checkout_sweeper.runs.fleet.rows import settle_parent
from checkout_sweeper.runs.queue.pool import stop_canceled_here
from checkout_sweeper.runs.rows import OWNER, request_cancel
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun


def cancel_run(db: Database, sweep_id: str, by: str = OWNER) -> str:
    """Cancel the run and everything it started (``by`` its owner or an operator, as
    ``runs.rows`` records it); the status it has now."""
    with db.session() as session:
        run = session.get(SweepRun, sweep_id)
        parent_id = run.parent_id if run is not None else None
        children = list(session.scalars(select(SweepRun.id).where(SweepRun.parent_id == sweep_id)))
    for child_id in children:
        request_cancel(db, child_id, by)
    status = request_cancel(db, sweep_id, by)
    stop_canceled_here({sweep_id, *children})  # those running here stop now
    for fleet_id in (parent_id, sweep_id if children else None):
        if fleet_id is not None:  # a child canceled while queued ends now: so may its fleet
            settle_parent(db, fleet_id)
    return status
