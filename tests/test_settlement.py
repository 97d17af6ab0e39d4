"""A killed sweep's expires that were sent and never answered are settled by the next sweep:
the expire sent again with its own idempotency key tells ours (Stripe replays its answer)
from a session that lapsed by itself after a request that never arrived."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from sqlalchemy import select

from checkout_sweeper.engine.expirer import idempotency_key
from checkout_sweeper.engine.gateway import NO_FILTERS
from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.runs.journal import Journal
from checkout_sweeper.runs.recovery import import_journals
from checkout_sweeper.runs.settlement import settle_unknown
from checkout_sweeper.runs.write_ahead import SENT
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun, SweptSession
from checkout_sweeper.stripe_api.adapter import StripeGateway

from harness import wait_until
from helpers import TEST_KEY

RUN_ID = "k" * 32


def _killed_with_two_in_flight(
    db: Database, folder: Path, fake_stripe: FakeStripeServer, sent_at: float
) -> tuple[StripeGateway, str, str]:
    """Two sessions that live 3 s, and a run whose expires of both were journaled as sent at
    ``sent_at``: the first reached Stripe (its answer lost with the process), the second never
    left and its session lapsed by itself. The journal is imported as the next command does."""
    requests.post(f"{fake_stripe.url}/_admin/settings", json={"lifetime_s": 3}, timeout=5)
    fake_stripe.state.seed(open_=2)
    gateway = StripeGateway(TEST_KEY, api_base=fake_stripe.url)
    sessions = gateway.list_open(limit=10, starting_after=None, filters=NO_FILTERS).sessions
    reached, never_left = (str(session["id"]) for session in sessions)
    with db.session() as session:
        session.add(SweepRun(id=RUN_ID, trigger="cli", account=gateway.account, status="running"))
    journal = Journal(folder, RUN_ID)
    journal.append({"kind": "run", "id": RUN_ID, "trigger": "cli", "account": gateway.account})
    for session_id in (reached, never_left):
        journal.append({"kind": SENT, "session_id": session_id, "at": sent_at})
    journal.close()
    gateway.expire(reached, idempotency_key(RUN_ID, reached))
    wait_until(lambda: gateway.session_status(never_left) == "expired", 10, what="the lapse")
    import_journals(db, folder)
    assert {outcome for outcome, _ in _outcomes(db).values()} == {"unknown"}
    return gateway, reached, never_left


def _outcomes(db: Database) -> dict[str, tuple[str, str | None]]:
    with db.session() as session:
        rows = session.execute(select(SweptSession)).scalars()
        return {row.session_id: (row.outcome, row.error) for row in rows}


def test_a_lost_answer_is_ours_and_a_lapse_after_a_request_that_never_left_is_not(
    db: Database, tmp_path: Path, fake_stripe: FakeStripeServer
) -> None:
    gateway, reached, never_left = _killed_with_two_in_flight(
        db, tmp_path / "journal", fake_stripe, time.time()
    )
    assert settle_unknown(db, gateway, gateway.account) == 2
    assert _outcomes(db) == {reached: ("expired", None), never_left: ("already_closed", "expired")}
    with db.session() as session:
        run = session.get(SweepRun, RUN_ID)
        assert run is not None and (run.expired_count, run.already_closed_count) == (1, 1)
    stats = fake_stripe.state.snapshot()
    assert stats["sessions_expired_twice"] == 0 and stats["lapsed"] == 1


def test_past_stripe_keeping_its_keys_the_status_decides_and_nothing_is_sent(
    db: Database, tmp_path: Path, fake_stripe: FakeStripeServer
) -> None:
    """A day later Stripe no longer knows the key: a request sent again would act afresh."""
    day_ago = time.time() - 25 * 3600
    gateway, reached, never_left = _killed_with_two_in_flight(
        db, tmp_path / "journal", fake_stripe, day_ago
    )
    sent = fake_stripe.state.snapshot()["requests"]["expire"]
    assert settle_unknown(db, gateway, gateway.account) == 2
    assert _outcomes(db) == {reached: ("expired", None), never_left: ("expired", None)}
    assert fake_stripe.state.snapshot()["requests"]["expire"] == sent  # no expire sent
