"""Schedules: slots worked out from a period or a cron expression, each claimed by one worker
only, missed ones run once; and real ``worker`` processes running them, with and without the
job queue, as ordinary sweeps with ``trigger: schedule``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from checkout_sweeper.engine.scope import EVERYTHING, Scope
from checkout_sweeper.errors import ScheduleInvalid
from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.runs.queue.pool import stop_local_pools
from checkout_sweeper.runs.queue.producer import in_process_broker
from checkout_sweeper.runs.schedules import (
    Cadence,
    ScheduleLoop,
    add_schedule,
    claim_due_slots,
    list_schedules,
    schedule_json,
)
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import Schedule, SweepRun, User
from checkout_sweeper.store.users import add_user

from harness import queued_env, sweeper_env, wait_until, working
from helpers import run_command

T0 = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("every", "cron", "problem"),
    [
        (None, None, r"give a period \(every\) or a cron expression \(cron\)$"),
        ("15m", "0 3 * * *", "not both"),
        ("10s", None, r"from 60s \(1m\) to 365d, got '10s'"),
        ("25000d", None, r"from 60s \(1m\) to 365d, got '25000d'"),
        ("99999999999999999w", None, "to 365d"),
        ("soon", None, "15m"),
        (None, "0 3 * *", "five fields"),
        (None, "61 * * * *", "cron"),
        (None, "0 0 31 2 *", r"'0 0 31 2 \*' names no date that exists .* never run"),
        (None, "0 0 30 2 *", "never run"),
        (None, "0 0 * * *" + " " * 120, "at most 120 printable ASCII characters"),
        (None, "\u0663 * * * *", "printable ASCII"),  # an Arabic-Indic 3
        (None, "0 0 * * *\x00", "printable ASCII"),
    ],
)
def test_a_cadence_is_a_period_of_a_minute_to_a_year_or_five_cron_fields_that_come(
    every, cron, problem
):
    with pytest.raises(ScheduleInvalid, match=problem):
        Cadence.read(every, cron)


def test_a_cron_of_a_rare_date_that_exists_is_a_cadence():
    assert Cadence.read(None, "0 0 29 2 *").cron == "0 0 29 2 *"  # leap years
    assert Cadence.read("365d", None).every_s == 365 * 86400


def test_the_latest_slot_of_a_period_counts_from_the_schedules_creation():
    every = Cadence.read("15m", None)
    assert every.latest_slot(T0, T0 + timedelta(minutes=14)) is None
    assert every.latest_slot(T0, T0 + timedelta(minutes=15)) == T0 + timedelta(minutes=15)
    assert every.latest_slot(T0, T0 + timedelta(minutes=50)) == T0 + timedelta(minutes=45)


def test_the_latest_slot_of_a_cron_is_the_last_moment_it_names():
    nightly = Cadence.read(None, "0 3 * * *")
    assert nightly.latest_slot(T0, T0 + timedelta(hours=2)) is None
    assert nightly.latest_slot(T0, T0 + timedelta(hours=3)) == T0 + timedelta(hours=3)
    assert nightly.latest_slot(T0, T0 + timedelta(days=2)) == T0 + timedelta(days=1, hours=3)


def _backdated(db: Database, every: str, created: datetime, scope: Scope = EVERYTHING) -> str:
    schedule = add_schedule(db, Cadence.read(every, None), scope, dry_run=False, user_id=None)
    with db.session() as session:
        session.execute(
            update(Schedule).where(Schedule.id == schedule["id"]).values(created_at=created)
        )
    return schedule["id"]


def test_a_slot_is_claimed_once_however_many_ask(db):
    _backdated(db, "1m", T0)
    now = T0 + timedelta(seconds=61)
    won = [claim_due_slots(db, now) for _ in range(3)]
    assert [len(claimed) for claimed in won] == [1, 0, 0]
    assert won[0][0].slot == T0 + timedelta(minutes=1)


def test_slots_missed_while_no_worker_ran_are_run_once_not_once_each(db):
    _backdated(db, "1m", T0)
    late = T0 + timedelta(minutes=10, seconds=5)  # ten slots went by
    assert len(claim_due_slots(db, late)) == 1
    assert claim_due_slots(db, late + timedelta(seconds=50)) == []
    next_one = claim_due_slots(db, late + timedelta(seconds=56))
    assert [slot.slot for slot in next_one] == [T0 + timedelta(minutes=11)]


def test_a_schedule_shows_its_row_s_own_dict(db):
    """What ``/v1/schedules`` and ``schedules list --json`` show, key for key and in order."""
    scope = Scope(older_than="2h", metadata=(("channel", "ci"),))
    _backdated(db, "15m", T0, scope)
    claim_due_slots(db, T0 + timedelta(minutes=16))
    with db.session() as session:
        row = session.scalars(select(Schedule)).one()
        shown = schedule_json(row)
        keys = ["id", "user_id", "every", "cron", "scope", "dry_run", "created_at", "last_slot_at"]
        assert list(shown) == keys
        assert (shown["id"], shown["every"], shown["cron"]) == (row.id, 900, None)
        assert shown["scope"]["older_than"] == "2h"
        assert shown["scope"]["metadata"] == {"channel": "ci"}
        assert shown["last_slot_at"] is not None
    assert list_schedules(db) == [shown]


def test_schedules_add_list_and_remove_from_the_command_line(tmp_path):
    env = sweeper_env(tmp_path)
    added = run_command(env, "schedules", "add", "--every", "15m", "--older-than", "2h", "--json")
    assert added.returncode == 0, added.stderr
    schedule = json.loads(added.stdout)
    assert schedule["every"] == 900 and schedule["scope"]["older_than"] == "2h"
    listed = run_command(env, "schedules", "list")
    assert schedule["id"] in listed.stdout and "every 15m" in listed.stdout
    assert "older than 2h" in listed.stdout
    bad = run_command(env, "schedules", "add", "--cron", "every night")
    assert bad.returncode == 2 and "five fields" in bad.stderr
    never = run_command(env, "schedules", "add", "--cron", "0 0 31 2 *")
    assert never.returncode == 2 and "never run" in never.stderr
    neither = run_command(env, "schedules", "add", "--older-than", "2h")
    assert neither.returncode == 2
    assert "give a period (every) or a cron expression" in neither.stderr
    too_long = run_command(env, "schedules", "add", "--every", "25000d")
    assert too_long.returncode == 2 and "to 365d" in too_long.stderr
    short = run_command(env, "schedules", "remove", schedule["id"][:6])
    assert short.returncode == 2 and "at least 4 characters" in short.stderr
    prefix = run_command(env, "schedules", "remove", schedule["id"][:8])  # sch_ and 4 digits
    assert prefix.returncode == 0 and f"schedule {schedule['id']} removed" in prefix.stdout
    assert json.loads(run_command(env, "schedules", "list", "--json").stdout) == []
    missing = run_command(env, "schedules", "remove", schedule["id"])
    assert missing.returncode == 2 and "no schedule" in missing.stderr


# real worker processes ----------------------------------------------------------------------
def _tagged_shop(fake_stripe: FakeStripeServer) -> set[str]:
    """Six sessions a CI run tagged, four others; the tagged ids."""
    tagged = set()
    for i in range(10):
        params = {"metadata": {"ci_run": "77" if i < 6 else "78"}}
        session = fake_stripe.state.create_session(False, "", params)
        if i < 6:
            tagged.add(session["id"])
    return tagged


def _schedule_runs(env: dict[str, str]) -> list[dict]:
    runs = json.loads(run_command(env, "history", "--json", "--limit", "50").stdout)
    return [run for run in runs if run["trigger"] == "schedule"]


def _two_slots_by_two_workers(
    env: dict[str, str], fake_stripe: FakeStripeServer, tmp_path: Path
) -> list[dict]:
    """A one-minute schedule created 4 min 55 s ago (four slots missed, the next in 5 s),
    two workers: two runs, one per slot, then nothing until the slot after."""
    tagged = _tagged_shop(fake_stripe)
    db = Database(env["DATABASE_URL"])
    db.upgrade()
    created = datetime.now(UTC) - timedelta(minutes=4, seconds=55)
    schedule_id = _backdated(db, "1m", created, Scope(metadata=(("ci_run", "77"),)))
    with working(env, tmp_path / "w1.log"), working(env, tmp_path / "w2.log"):
        wait_until(lambda: len(_schedule_runs(env)) >= 2, 40, interval=1, what="two slots")
        wait_until(
            lambda: all(run["status"] not in ("queued", "running") for run in _schedule_runs(env)),
            30,
            what="the runs to end",
        )
        assert len(_schedule_runs(env)) == 2  # not one per missed slot, not one per worker
    runs = _schedule_runs(env)
    assert {run["schedule_id"] for run in runs} == {schedule_id}
    assert all(run["scope"]["metadata"] == {"ci_run": "77"} for run in runs)
    assert sum(run["expired_count"] for run in runs) == 6
    still_open = fake_stripe.state.snapshot()["open_total"]
    assert still_open == 4 and not tagged & _open_ids(fake_stripe)
    return runs


def _open_ids(fake_stripe: FakeStripeServer) -> set[str]:
    with fake_stripe.state.lock:
        ledger = fake_stripe.state.ledger(False, "")
        return {sid for sid, record in ledger.records.items() if record["status"] == "open"}


@pytest.mark.services
def test_two_workers_without_a_queue_run_each_slot_once(tmp_path, fake_stripe, postgres_url):
    env = sweeper_env(tmp_path, fake_stripe.url, DATABASE_URL=postgres_url)
    runs = _two_slots_by_two_workers(env, fake_stripe, tmp_path)
    assert all(run["status"] == "succeeded" for run in runs)


@pytest.mark.services
def test_two_workers_on_the_queue_run_each_slot_once(
    tmp_path, fake_stripe, postgres_url, redis_url
):
    env = queued_env(tmp_path, fake_stripe.url, postgres_url, redis_url)
    runs = _two_slots_by_two_workers(env, fake_stripe, tmp_path)
    assert all(run["status"] == "succeeded" and run["queued_at"] for run in runs)


def test_a_slot_whose_owner_has_since_become_a_stripe_customer_is_not_started(
    tmp_path, db, fake_stripe
):
    """The spec's rule holds when a schedule fires, not only when it is added."""
    fake_stripe.state.seed(open_=5)
    owner = add_user(db, "shop@example.com")
    schedule = add_schedule(db, Cadence.read("1m", None), EVERYTHING, dry_run=False, user_id=1)
    with db.session() as session:
        session.execute(update(Schedule).where(Schedule.id == schedule["id"]).values(created_at=T0))
        session.execute(
            update(User).where(User.id == owner["id"]).values(stripe_customer_id="cus_Late1")
        )
    settings = Settings.from_env(sweeper_env(tmp_path, fake_stripe.url), instance_path=tmp_path)
    loop = ScheduleLoop(settings, db, in_process_broker(), clock=lambda: T0 + timedelta(seconds=61))
    assert loop.tick() == []
    assert fake_stripe.state.snapshot()["open_total"] == 5


def test_a_schedule_no_door_would_write_is_skipped_and_the_others_still_fire(
    tmp_path, db, fake_stripe, caplog
):
    """Rows written behind the doors' backs (a cron that names no date, a scope no parser
    reads, no cadence at all): each is logged and skipped, every tick, and the good
    schedule's slot still starts."""
    fake_stripe.state.seed(open_=3)
    with db.session() as session:
        for number, (every_s, cron, scope) in enumerate(
            [(None, "0 0 31 2 *", "{}"), (60, None, '{"colour": "red"}'), (None, None, "{}")]
        ):
            session.add(
                Schedule(
                    id=f"sch_{number:020x}",
                    every_s=every_s,
                    cron=cron,
                    scope=scope,
                    created_at=T0,
                )
            )
    good = _backdated(db, "1m", T0)
    with db.session() as session:
        session.execute(update(Schedule).where(Schedule.id == good).values(dry_run=True))
    settings = Settings.from_env(sweeper_env(tmp_path, fake_stripe.url), instance_path=tmp_path)
    clock = T0 + timedelta(seconds=61)
    loop = ScheduleLoop(settings, db, in_process_broker(), clock=lambda: clock)
    try:
        started = loop.tick()
        assert len(started) == 1
        wait_until(lambda: _run_status(db, started[0]) == "succeeded", what="the dry run")
    finally:
        stop_local_pools(timeout_s=10)
    skipped = [r.getMessage() for r in caplog.records if "cannot be worked out" in r.getMessage()]
    assert len(skipped) == 3
    assert fake_stripe.state.snapshot()["open_total"] == 3
    claimed = {s["id"]: s["last_slot_at"] for s in list_schedules(db)}
    assert claimed.pop(good) is not None and set(claimed.values()) == {None}


def _run_status(db: Database, sweep_id: str) -> str:
    with db.session() as session:
        return str(session.scalar(select(SweepRun.status).where(SweepRun.id == sweep_id)))
