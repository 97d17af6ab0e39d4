"""Outcomes a stopped sweep left ``unknown`` (an expire was sent, its answer lost, and the stop
came before it could ask again), settled by the next sweep of the account: Stripe's status of
each session says what happened, and the old run's counts are recounted from its rows."""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from checkout_sweeper.engine.gateway import Gateway
from checkout_sweeper.errors import StripeProblem
from checkout_sweeper.runs.rows import STILL_OPEN, recount, update_run
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun, SweptSession
from checkout_sweeper.vocabulary import Outcome

log = logging.getLogger("checkout_sweeper.audit")
MOST_AT_ONCE = 100  # a stop leaves at most the pool's in-flight expires; this bounds the GETs


def settle_unknown(db: Database, gateway: Gateway, account: str) -> int:
    """Settle this account's unknown rows; return how many. A session Stripe cannot tell us
    about now stays unknown for the next sweep."""
    with db.session() as session:
        unknown = session.execute(
            select(SweptSession.id, SweptSession.run_id, SweptSession.session_id)
            .join(SweepRun, SweepRun.id == SweptSession.run_id)
            .where(SweepRun.account == account, SweptSession.outcome == Outcome.UNKNOWN)
            .limit(MOST_AT_ONCE)
        ).all()
    settled: dict[int, tuple[str, str | None]] = {}
    for row_id, _, session_id in unknown:
        try:
            settled[row_id] = _settled(gateway.session_status(session_id))
        except StripeProblem as err:
            log.warning("unknown outcome of %s stays unknown for now: %s", session_id, err)
    _write(db, settled, {run_id for row_id, run_id, _ in unknown if row_id in settled})
    return len(settled)


def _settled(status: str) -> tuple[str, str | None]:
    if status == "expired":  # the attempt whose answer was lost did it
        return Outcome.EXPIRED, None
    if status == "open":
        return Outcome.FAILED, STILL_OPEN
    return Outcome.ALREADY_CLOSED, status


def _write(db: Database, settled: dict[int, tuple[str, str | None]], runs: set[str]) -> None:
    if not settled:
        return
    with db.session() as session:
        for row_id, (outcome, error) in settled.items():
            session.execute(
                update(SweptSession)
                .where(SweptSession.id == row_id)
                .values(outcome=outcome, error=error)
            )
        for run_id in runs:
            update_run(session, run_id, recount(session, run_id))
    log.info("settled %d unknown outcomes of earlier sweeps", len(settled))
