"""Outcomes a stopped sweep left ``unknown`` (an expire was sent, its answer lost, and the stop
came before it could ask again), settled by the next sweep of the account, and the old run's
counts recounted from its rows.

Stripe's status alone cannot tell a session our lost request expired from one that lapsed by
itself (``expires_at``) after a request that never arrived, and a session still ``open`` may
yet be expired by a request of ours still on its way. The expire sent again with its own
idempotency key tells: Stripe replays the saved answer of a request that reached it (ours did
it: ``expired``), and acts afresh on a key it never saw: a closed session refuses (ours never
arrived: ``already_closed``), an open one is expired now, as the stopped sweep was asked to
(``expired``); one still in flight makes Stripe refuse the key for now (the row stays
``unknown`` for the next sweep). Only while Stripe keeps keys (about 24 h); after that the
status decides.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select, update

from checkout_sweeper.engine.expirer import idempotency_key
from checkout_sweeper.engine.gateway import Gateway
from checkout_sweeper.errors import SessionNotOpen, StripeProblem
from checkout_sweeper.runs.rows import STILL_OPEN, recount, update_run
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun, SweptSession, aware
from checkout_sweeper.vocabulary import Outcome

log = logging.getLogger("checkout_sweeper.audit")
MOST_AT_ONCE = 100  # a stop leaves at most the pool's in-flight expires; this bounds the GETs
REPLAY_WINDOW_S = 23 * 3600  # Stripe keeps an idempotency key's answer about 24 h


def settle_unknown(db: Database, gateway: Gateway, account: str) -> int:
    """Settle this account's unknown rows; return how many. A session Stripe cannot tell us
    about now stays unknown for the next sweep."""
    with db.session() as session:
        unknown = session.execute(
            select(
                SweptSession.id,
                SweptSession.run_id,
                SweptSession.session_id,
                SweptSession.recorded_at,
            )
            .join(SweepRun, SweepRun.id == SweptSession.run_id)
            .where(SweepRun.account == account, SweptSession.outcome == Outcome.UNKNOWN)
            .limit(MOST_AT_ONCE)
        ).all()
    settled: dict[int, tuple[str, str | None]] = {}
    for row_id, run_id, session_id, sent_at in unknown:
        try:
            replayable = time.time() - aware(sent_at).timestamp() < REPLAY_WINDOW_S
            settled[row_id] = _settled(gateway, run_id, session_id, replayable)
        except StripeProblem as err:
            log.warning("unknown outcome of %s stays unknown for now: %s", session_id, err)
    _write(db, settled, {run_id for row_id, run_id, *_ in unknown if row_id in settled})
    return len(settled)


def _settled(
    gateway: Gateway, run_id: str, session_id: str, replayable: bool
) -> tuple[str, str | None]:
    status = gateway.session_status(session_id)
    if status in ("open", "expired") and replayable:
        try:
            gateway.expire(session_id, idempotency_key(run_id, session_id))
        except SessionNotOpen as closed:  # a key new to Stripe: ours never arrived
            return Outcome.ALREADY_CLOSED, closed.status
        return Outcome.EXPIRED, None  # Stripe replayed its answer to ours, or acted on it now
    if status == "open":  # past the keys' lifetime: ours never arrived
        return Outcome.FAILED, STILL_OPEN
    if status == "expired":  # past the keys' lifetime: the attempt whose answer was lost
        return Outcome.EXPIRED, None
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
        parents = set(
            session.scalars(
                select(SweepRun.parent_id).where(
                    SweepRun.id.in_(runs), SweepRun.parent_id.is_not(None)
                )
            )
        )
    from checkout_sweeper.runs.fleet.rows import resum_parent  # fleets build on sweeps

    for parent_id in parents:  # a fleet's sums follow its accounts'
        resum_parent(db, str(parent_id))
    log.info("settled %d unknown outcomes of earlier sweeps", len(settled))
