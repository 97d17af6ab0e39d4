"""A recorded sweep: the account lease around the engine, and the run row it leaves behind."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from checkout_sweeper.engine.expirer import idempotency_key
from checkout_sweeper.engine.sweeper import SweepOptions
from checkout_sweeper.errors import LeaseLost, RetryableError, SweepAborted, SweepInProgress
from checkout_sweeper.runs.audit_trail import take_up_run
from checkout_sweeper.runs.journal import Journal
from checkout_sweeper.runs.lease import AccountLease
from checkout_sweeper.runs.recorded_sweep import Recording, begin_sweep
from checkout_sweeper.runs.recovery import import_journal_of, import_journals
from checkout_sweeper.runs.rows import outcome_entry, recent_runs, session_record
from checkout_sweeper.runs.run import RunView
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepLock, SweepRun, SweptSession, utcnow

from harness import wait_until
from memory_gateway import INSTANT, MemoryGateway


def _run(
    db: Database,
    gateway: MemoryGateway,
    journal_dir: Path | None = None,
    ttl_s: float = 10.0,
    **options: Any,
) -> None:
    folder = journal_dir or Path(db.url.split("///")[1]).parent / "journal"
    recording = Recording(db, folder, ttl_s)
    sweep_options = SweepOptions(**{**INSTANT, **options})
    begin_sweep(recording, gateway, sweep_options, trigger="cli").run()


def _only_run(db: Database) -> SweepRun:
    with db.session() as session:
        return session.scalars(select(SweepRun)).one()


def test_a_clean_sweep_is_recorded_succeeded_with_a_row_per_session(db):
    gateway = MemoryGateway(open_=7)
    _run(db, gateway)
    run = _only_run(db)
    assert (run.status, run.expired_count, run.remaining_count) == ("succeeded", 7, 0)
    with db.session() as session:
        outcomes = session.scalars(select(SweptSession.outcome)).all()
        assert outcomes == ["expired"] * 7
        assert session.scalars(select(SweepLock)).all() == []  # the lease is released


def test_a_sweep_with_failures_is_recorded_incomplete(db):
    gateway = MemoryGateway(open_=3)
    gateway.fail_expire(gateway.open_ids()[0], *[RetryableError("Stripe 500 error")] * 9)
    _run(db, gateway, max_attempts=2)
    run = _only_run(db)
    assert (run.status, run.failed_count, run.remaining_count) == ("incomplete", 1, 1)


def test_a_dry_run_is_recorded_succeeded_though_sessions_stay_open(db):
    _run(db, MemoryGateway(open_=4), dry_run=True)
    run = _only_run(db)
    assert (run.status, run.dry_run, run.remaining_count) == ("succeeded", True, 4)


def test_a_second_sweep_of_the_account_is_refused_while_the_first_holds_the_lease(db):
    gateway = MemoryGateway(open_=1)
    AccountLease(db, gateway.account, "someone-else", ttl_s=30).acquire()
    with pytest.raises(SweepInProgress):
        _run(db, gateway)
    assert gateway.calls["list"] == 0


def test_losing_the_account_lease_stops_the_sweep(db):
    gateway = MemoryGateway(open_=200)
    gateway.expire_delay_s = 0.01

    def steal_the_lease() -> None:
        wait_until(lambda: gateway.calls["expire"] >= 10, 30, what="10 expires")
        with db.session() as session:
            session.get(SweepLock, gateway.account).run_id = "someone-else"

    thief = threading.Thread(target=steal_the_lease)
    thief.start()
    with pytest.raises(LeaseLost, match="taken by another sweep"):
        # renewed every 0.5 s: a busy machine cannot delay one past its deadline by chance
        _run(db, gateway, ttl_s=3.0, max_rps=40, concurrency=2)
    thief.join()
    assert gateway.open_ids()
    assert _only_run(db).status == "interrupted"


def test_a_sweep_that_stripe_stops_is_recorded_failed_with_what_it_did(db):
    gateway = MemoryGateway(open_=5)
    gateway.fail_list(*[RetryableError("Stripe 500 error")] * 20)
    with pytest.raises(SweepAborted, match="500") as aborted:
        _run(db, gateway, max_attempts=2)
    run = _only_run(db)
    assert (run.status, run.error) == ("failed", "Stripe 500 error")
    # the webhook endpoints read (for side_effects), then the two listing attempts
    assert aborted.value.result is not None and aborted.value.result.stripe_requests == 1 + 2


def _left_unknown(db: Database, gateway: MemoryGateway, *session_ids: str) -> None:
    """An interrupted run whose expires of ``session_ids`` were sent and never answered."""
    with db.session() as session:
        session.add(
            SweepRun(
                id="r" * 32,
                trigger="cli",
                account=gateway.account,
                livemode=False,
                dry_run=False,
                status="interrupted",
            )
        )
        session.flush()
        session.add_all(
            SweptSession(run_id="r" * 32, session_id=sid, outcome="unknown", attempts=1)
            for sid in session_ids
        )


def _outcomes_of_the_stopped_run(db: Database) -> dict[str, str]:
    with db.session() as session:
        rows = select(SweptSession.session_id, SweptSession.outcome)
        return dict(session.execute(rows.where(SweptSession.run_id == "r" * 32)).tuples().all())


def test_the_next_sweep_settles_what_a_stopped_one_left_unknown(db):
    """Rows left unknown (an expire sent, its answer lost at the stop) are settled by the next
    sweep of the account from Stripe (the status, and the expire's answer replayed for its
    key), and the old run's counts recounted."""
    gateway = MemoryGateway(open_=3)
    acted, untouched, paid = gateway.open_ids()
    gateway.expire(acted, idempotency_key("r" * 32, acted))  # its answer was lost
    gateway.status[paid] = "complete"
    _left_unknown(db, gateway, acted, untouched, paid)
    _run(db, gateway)
    rows = _outcomes_of_the_stopped_run(db)
    with db.session() as session:
        old = session.get(SweepRun, "r" * 32)
        assert old is not None
        assert (old.expired_count, old.already_closed_count, old.failed_count) == (2, 1, 0)
    # the one still open: its expire, sent again under its key, acts now, as it was asked to
    assert rows == {acted: "expired", untouched: "expired", paid: "already_closed"}
    assert gateway.status[untouched] == "expired"
    assert len(gateway.expire_keys[untouched]) == 1  # once, under the stopped run's key


def test_settling_for_longer_than_the_lease_keeps_the_lease(db):
    """Settling sends requests too, one after another: a slow Stripe must not let the lease
    lapse under it (the sweep would stop, saying the database did not answer)."""
    gateway = MemoryGateway(open_=6)
    stopped = gateway.open_ids()[:4]
    _left_unknown(db, gateway, *stopped)
    gateway.status_delay_s = 1.0  # 4 s of settling against a lease of 3 s
    _run(db, gateway, ttl_s=3.0)
    run = _only_new_run(db)
    assert run.status == "succeeded" and run.expired_count == 2
    assert _outcomes_of_the_stopped_run(db) == dict.fromkeys(stopped, "expired")


def _only_new_run(db: Database) -> SweepRun:
    with db.session() as session:
        return session.scalars(select(SweepRun).where(SweepRun.id != "r" * 32)).one()


def test_a_dry_run_leaves_unknown_rows_to_the_next_sweep_and_sends_no_expire(db):
    gateway = MemoryGateway(open_=2)
    acted, untouched = gateway.open_ids()
    gateway.expire(acted, idempotency_key("r" * 32, acted))
    _left_unknown(db, gateway, acted, untouched)
    sent = gateway.calls["expire"]
    _run(db, gateway, dry_run=True)
    assert _outcomes_of_the_stopped_run(db) == {acted: "unknown", untouched: "unknown"}
    assert gateway.calls["expire"] == sent


def test_a_run_taken_up_again_shows_running_while_its_dead_attempt_is_imported(db, tmp_path):
    """A worker that takes up a dead worker's sweep imports the dead attempt's journal first;
    anyone polling the sweep meanwhile sees it running, never ended ``interrupted``."""
    run_id = "d" * 32
    with db.session() as session:
        session.add(SweepRun(id=run_id, trigger="api", account="acct_1", status="running"))
    journal = _dead_journal(tmp_path / "journal", run_id, "cs_test_a", "cs_test_b")
    import_journal_of(db, tmp_path / "journal", run_id)
    run = _only_run(db)
    assert (run.status, run.finished_at, run.error, run.expired_count) == ("running", None, None, 2)
    assert not journal.path.exists()


def test_a_run_marked_interrupted_by_a_reader_is_running_again_once_taken_up(db):
    """``history`` marks a run whose lease lapsed as interrupted; the worker that takes it up
    again makes it a running sweep with no end and no error."""
    run_id = "e" * 32
    with db.session() as session:
        session.add(
            SweepRun(
                id=run_id,
                trigger="api",
                account="acct_1",
                status="interrupted",
                error="the process stopped mid-sweep (lease lapsed)",
                finished_at=utcnow(),
            )
        )
    with db.session() as session:
        take_up_run(session, {"id": run_id}, host="here", pid=42)
    run = _only_run(db)
    assert (run.status, run.finished_at, run.error, run.attempts) == ("running", None, None, 2)


def test_a_queued_sweep_whose_worker_died_waits_for_the_next_worker(db, tmp_path):
    """A dead worker's sweep that the job queue carries is queued again, since the queue
    hands it to another worker: so the next command's journal import says, and so ``history``
    (and ``GET /v1/sweeps``) says once the lease has lapsed. A sweep run by the process
    itself ended there, interrupted."""
    queued_id, unjournaled_id, own_id = "q" * 32, "u" * 32, "p" * 32  # (another host's)
    with db.session() as session:
        for run_id, queued_at in (
            (queued_id, utcnow()),
            (unjournaled_id, utcnow()),
            (own_id, None),
        ):
            session.add(SweepRun(id=run_id, trigger="api", account="acct_1", queued_at=queued_at))
    _dead_journal(tmp_path / "journal", queued_id, "cs_test_a")
    import_journals(db, tmp_path / "journal")
    shown = {listed.run.id: listed.run for listed in recent_runs(db)}
    queued, own = shown[queued_id], shown[own_id]
    assert (queued.status, queued.error, queued.finished_at) == ("queued", None, None)
    assert queued.expired_count == 1 and shown[unjournaled_id].status == "queued"
    assert own.status == "interrupted" and "lease lapsed" in (own.error or "")


def _dead_journal(folder: Path, run_id: str, *expired: str) -> Journal:
    """What a worker killed mid-sweep left on disk: its run and the sessions it expired."""
    journal = Journal(folder, run_id)
    journal.append({"kind": "run", "id": run_id, "trigger": "api", "account": "acct_1"})
    for session_id in expired:
        journal.append(outcome_entry(session_id, "expired", None, 1))
    journal.close()
    return journal


def _rows_of_every_kind() -> list[SweepRun]:
    """A queued run a worker handed back, a finished one with its answer and scope, a fleet's
    parent and child, and a running one (started and seen in another zone's clock)."""
    started = datetime(2026, 12, 1, 4, 35, 51, 123456, tzinfo=UTC)
    return [
        SweepRun(
            id="a" * 32,
            trigger="api",
            user_id=None,
            account="acct_1",
            status="queued",
            queued_at=started,
            host="gone",
            pid=7,
            attempts=1,
            started_at=started,
        ),
        SweepRun(
            id="b" * 32,
            trigger="cli",
            account="test:acct_1",
            status="succeeded",
            started_at=started,
            finished_at=started + timedelta(seconds=2.5),
            expired_count=5,
            found_count=5,
            listing_complete=True,
            host="here",
            pid=42,
            scope=json.dumps({"limit": 5}),
            result=json.dumps({"expired_count": 5}),
            schedule_id="sch_1",
            removed_user_id=4,
            removed_user_email="a@example.com",
        ),
        SweepRun(
            id="c" * 32,
            trigger="api",
            user_id=None,
            account="acct_1",
            fleet=True,
            status="running",
            started_at=started.astimezone(timezone(timedelta(hours=5))),
        ),
        SweepRun(
            id="d" * 32,
            trigger="api",
            account="test:acct_2",
            parent_id="c" * 32,
            stripe_account="acct_2",
            status="failed",
            error="refused",
            started_at=started,
            finished_at=started,
        ),
    ]


RUN_KEYS = [  # the API's run, key for key, in order
    "id",
    "status",
    "trigger",
    "user_id",
    "removed_user_id",
    "removed_user_email",
    "account",
    "livemode",
    "dry_run",
    "started_at",
    "finished_at",
    "duration_s",
    "expired_count",
    "already_closed_count",
    "failed_count",
    "remaining_count",
    "found_count",
    "listing_complete",
    "stripe_requests",
    "error",
    "host",
    "pid",
    "worker",
    "attempts",
    "queued_at",
    "scope",
    "schedule_id",
    "parent_id",
    "fleet",
    "stripe_account",
]


def test_a_run_read_shows_the_json_its_row_gives(db):
    """``RunView.as_json`` is what the API lists and ``history`` prints: the row's own dict,
    key for key and in its order, for rows as read back and as just changed in a session."""
    with db.session() as session:
        session.add_all(_rows_of_every_kind())
    with db.session() as session:
        rows = list(session.scalars(select(SweepRun).order_by(SweepRun.id)))
        rows[0].finished_at = utcnow()  # aware, beside a start SQLite gave back without zone
        for row in rows:
            view = RunView.of(row)
            shown = view.as_json()
            assert list(shown) == RUN_KEYS  # the API's run, key for key and in this order
            assert (shown["id"], shown["status"], shown["account"]) == (
                row.id,
                row.status,
                row.account,
            )
            assert shown["duration_s"] == row.duration_s
            assert view.result == (json.loads(row.result) if row.result else None)
            assert view.request_fingerprint == row.request_fingerprint


def test_a_run_shown_alone_has_its_answer_rate_and_children(db):
    with db.session() as session:
        session.add_all(_rows_of_every_kind())
    with db.session() as session:
        finished, parent, child = (
            RunView.of(session.get(SweepRun, c * 32)) for c in ("b", "c", "d")
        )
    shown = finished.shown([], now=0.0)
    assert list(shown)[-3:] == ["result", "rate", "children"]
    assert (shown["result"], shown["rate"], shown["children"]) == ({"expired_count": 5}, 2.0, [])
    later = parent.started_at.timestamp() + 4
    assert parent.shown([child], now=later)["children"] == [child.as_json()]
    assert parent.rate(later) == 0.0 and parent.worker is None and finished.worker is not None


def test_a_session_record_is_its_row_s_own_dict(db):
    with db.session() as session:
        session.add_all(_rows_of_every_kind())
        session.add(
            SweptSession(
                run_id="b" * 32, session_id="cs_test_a", outcome="failed", error="no", attempts=3
            )
        )
    with db.session() as session:
        row = session.scalars(select(SweptSession)).one()
        record = session_record(row)
        assert list(record) == ["session_id", "outcome", "error", "attempts", "recorded_at"]
        assert (record["session_id"], record["outcome"], record["error"], record["attempts"]) == (
            "cs_test_a",
            "failed",
            "no",
            3,
        )
