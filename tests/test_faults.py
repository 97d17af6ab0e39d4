"""Faults between the service and its dependencies, injected through real sockets.

A ``TcpProxy`` sits between the CLI or ``serve`` and PostgreSQL, Redis or the fake Stripe, and
cuts, refuses or blackholes the link while a sweep runs. What must hold: no outcome lost (rows
equal what the fake Stripe expired, run counts equal rows), never two sweeps of one account at
once, and bounded answers, with ``/healthz`` answering throughout.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.store.models import SweepRun, SweptSession

from harness import COMMAND, expires_seen, serving, sweeper_env, wait_for_expires, wait_until
from helpers import TEST_KEY, mint
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.services
OTHER_KEY = "sk_test_51OtherKeyOfTheSameAccountZz9"  # the same account: the same lease


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy to the test database, and the database URL that goes through it."""
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    through = url.set(host="127.0.0.1", port=proxy.port)
    yield proxy, through.render_as_string(hide_password=False)
    proxy.close()


def _env(tmp_path: Path, fake_url: str, database_url: str, **extra: str) -> dict[str, str]:
    extra = {"SWEEPER_MAX_RPS": "60", "LOG_LEVEL": "WARNING", **extra}
    return sweeper_env(tmp_path, fake_url, DATABASE_URL=database_url, **extra)


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    command = [*COMMAND, *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [*COMMAND, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def _sweep_under_way(
    fake_stripe: FakeStripeServer, env: dict[str, str], sessions: int, expires: int
) -> subprocess.Popen:
    """Seed ``sessions``, start a CLI sweep with a little latency, return once ``expires``
    expire requests reached the fake."""
    fake_stripe.state.seed(open_=sessions)
    fake_stripe.state.faults.update({"latency_ms": 10})
    sweep = _cli(env, "sweep", "--yes", "--json")
    wait_for_expires(fake_stripe, expires, alive=sweep)
    return sweep


def _expired_by_stripe(fake_stripe: FakeStripeServer) -> set[str]:
    with fake_stripe.state.lock:
        return set(fake_stripe.state.stats.expired_by_request)


def _recorded(postgres_url: str) -> tuple[SweepRun, dict[str, str]]:
    """The only run, and its session rows (session id: outcome)."""
    engine = create_engine(postgres_url)
    with Session(engine) as session:
        run = session.scalars(select(SweepRun)).one()
        rows = dict(session.execute(select(SweptSession.session_id, SweptSession.outcome)).all())
        count = session.scalar(select(func.count()).select_from(SweptSession))
    engine.dispose()
    assert count == len(rows), "a session was recorded twice"
    return run, rows


def _recorded_first(postgres_url: str, run_id: str) -> tuple[SweepRun, dict[str, str]]:
    """One run of several, and its session rows (session id: outcome)."""
    engine = create_engine(postgres_url)
    with Session(engine) as session:
        run = session.get(SweepRun, run_id)
        chosen = select(SweptSession.session_id, SweptSession.outcome).where(
            SweptSession.run_id == run_id
        )
        rows = dict(session.execute(chosen).all())
    engine.dispose()
    assert run is not None
    return run, rows


def _counts_match_rows(run: SweepRun, rows: dict[str, str]) -> None:
    outcomes = list(rows.values())
    assert run.expired_count == outcomes.count("expired")
    assert run.already_closed_count == outcomes.count("already_closed")
    assert run.failed_count == outcomes.count("failed")


# the database ------------------------------------------------------------------------------------
def test_database_cut_mid_sweep_loses_no_outcome(fake_stripe, pg_proxy, postgres_url, tmp_path):
    proxy, through = pg_proxy
    sweep = _sweep_under_way(fake_stripe, _env(tmp_path, fake_stripe.url, through), 300, 60)
    proxy.cut()
    # the sweep goes on without its database: two seconds' worth of expires, audit writes failing
    wait_for_expires(fake_stripe, expires_seen(fake_stripe) + 120, alive=sweep)
    proxy.passing()
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, err.decode()
    failures = err.decode().count("audit write for sweep")
    assert 0 < failures <= 8  # logged, then retried with backoff (not at every outcome)
    run, rows = _recorded(postgres_url)
    assert run.status == "succeeded" and json.loads(out)["expired_count"] == 300
    assert {s for s, o in rows.items() if o == "expired"} == _expired_by_stripe(fake_stripe)
    _counts_match_rows(run, rows)


def test_database_down_over_the_end_exits_5_and_the_journal_is_imported_later(
    fake_stripe, pg_proxy, postgres_url, tmp_path
):
    proxy, through = pg_proxy
    env = _env(tmp_path, fake_stripe.url, through, SWEEPER_AUDIT_GRACE_S="1")
    sweep = _sweep_under_way(fake_stripe, env, 200, 40)
    proxy.cut()
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 5, err.decode()
    journals = list((tmp_path / "journal").glob("*.jsonl"))
    assert len(journals) == 1 and str(journals[0]) in err.decode().replace("\n", "")
    proxy.passing()
    history = _run(env, "history", "--json")
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout)[0]["pending"] == 0, history.stderr

    run, rows = _recorded(postgres_url)
    assert run.status == "succeeded" and len(rows) == 200
    assert set(rows) == _expired_by_stripe(fake_stripe)
    _counts_match_rows(run, rows)
    assert list((tmp_path / "journal").glob("*.jsonl")) == []


def test_a_partitioned_sweeper_stops_before_a_second_one_takes_the_account(
    fake_stripe, pg_proxy, postgres_url, tmp_path
):
    proxy, through = pg_proxy
    common = {"SWEEPER_LEASE_TTL": "3", "SWEEPER_AUDIT_GRACE_S": "1"}
    first_env = _env(tmp_path / "a", fake_stripe.url, through, **common)
    second_env = _env(tmp_path / "b", fake_stripe.url, postgres_url, **common)
    second_env["STRIPE_API_KEY"] = OTHER_KEY
    assert (
        _run(second_env, "sweep", "--yes", "--json").returncode == 0
    )  # both keys: one account, known
    fake_stripe.state.reset_counters()
    first = _sweep_under_way(fake_stripe, first_env, 400, 40)
    proxy.blackhole()
    second = wait_until(
        lambda: (ran := _run(second_env, "sweep", "--yes", "--json")).returncode != 4 and ran,
        60,
        interval=0.2,
        what="the second sweeper to get the account",
    )
    assert second
    assert second.returncode == 0, second.stderr
    first.communicate(timeout=60)
    assert first.returncode in (4, 5)  # stopped: the lease could not be kept (and recorded)
    senders = fake_stripe.state.snapshot()["senders"]
    first_last, second_first = senders[TEST_KEY[-4:]][1], senders[OTHER_KEY[-4:]][0]
    assert first_last < second_first, "both sweepers sent requests at the same time"
    assert fake_stripe.state.snapshot()["open_total"] == 0
    assert fake_stripe.state.snapshot()["sessions_expired_twice"] == 0


def test_a_killed_sweep_is_imported_by_the_next_command(
    fake_stripe, pg_proxy, postgres_url, tmp_path
):
    _, through = pg_proxy
    env = _env(tmp_path, fake_stripe.url, through, SWEEPER_CONCURRENCY="4")
    sweep = _sweep_under_way(fake_stripe, env, 200, 80)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait(timeout=10)
    history = _run(env, "history", "--json")
    assert history.returncode == 0, history.stderr
    run, rows = _recorded(postgres_url)
    expired = _expired_by_stripe(fake_stripe)
    assert run.status == "interrupted"
    assert expired <= set(rows)  # every expire was journaled before it left: none is lost
    unknown = {sid for sid, outcome in rows.items() if outcome == "unknown"}
    assert set(rows) - unknown <= expired and len(unknown) <= 4  # those in flight at the kill
    _counts_match_rows(run, rows)
    assert _run(env, "sweep", "--yes", "--json").returncode == 0  # the account is free at once
    run, rows = _recorded_first(postgres_url, run.id)
    assert "unknown" not in rows.values()  # the next sweep settled them from Stripe
    assert {sid for sid, outcome in rows.items() if outcome == "expired"} <= expired


# Stripe ----------------------------------------------------------------------------------------
def test_a_silent_stripe_ends_the_sweep_in_bounded_time(fake_stripe, postgres_url, tmp_path):
    proxy = TcpProxy("127.0.0.1", int(fake_stripe.url.rsplit(":", 1)[1]))
    try:
        proxy.blackhole()
        env = _env(tmp_path, f"http://127.0.0.1:{proxy.port}", postgres_url, STRIPE_TIMEOUT_S="1")
        started = time.monotonic()
        result = _run(env, "sweep", "--yes", "--json", timeout=60)
        assert result.returncode == 3, result.stderr
        assert time.monotonic() - started < 20
    finally:
        proxy.close()


# serve: Redis and PostgreSQL ---------------------------------------------------------------------
@pytest.fixture
def serve(tmp_path, fake_stripe):
    """``serve`` on a free port with the given database and Redis URLs; yields its URL."""
    servers = contextlib.ExitStack()

    def start(database_url: str, redis_url: str) -> str:
        env = _env(tmp_path, fake_stripe.url, database_url, RATELIMIT_STORAGE_URI=redis_url)
        return servers.enter_context(serving(env, tmp_path / "serve.log")).url

    with servers:
        yield start


def _user(database_url: str, tmp_path: Path) -> str:
    env = sweeper_env(tmp_path, DATABASE_URL=database_url)
    added = _run(env, "users", "add", "--email", f"u{time.time_ns()}@example.com", "--json")
    assert added.returncode == 0, added.stderr
    return str(json.loads(added.stdout)["id"])


def _in_flight(
    url: str, token: str, count: int, path: str = "/v1/active_checkout_sessions_and_expire_all"
) -> tuple[ThreadPoolExecutor, list]:
    """``count`` calls of ``path`` under way at once, each timed."""

    def call() -> tuple[int, float]:
        started = time.monotonic()
        response = requests.get(
            f"{url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        return response.status_code, time.monotonic() - started

    pool = ThreadPoolExecutor(count)
    return pool, [pool.submit(call) for _ in range(count)]


def _healthz_time(url: str) -> float:
    started = time.monotonic()
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    return time.monotonic() - started


def test_blackholed_redis_gives_bounded_503s_and_healthz_keeps_answering(
    serve, postgres_url, redis_url, tmp_path
):
    target = make_url(redis_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 6379)
    try:
        url = serve(postgres_url, f"redis://127.0.0.1:{proxy.port}/{target.database or 0}")
        token = mint(_user(postgres_url, tmp_path))
        proxy.blackhole()
        readers, reads = _in_flight(url, token, 8, "/v1/sweeps")  # each spends a read quota
        wait_until(lambda: proxy.held() >= 8, 10, what="8 requests waiting on Redis")
        assert _healthz_time(url) < 1
        pool, calls = _in_flight(url, token, 4)
        answers = [call.result(timeout=30) for call in [*reads, *calls]]
        statuses = {status for status, _ in answers}
        assert 503 in statuses and statuses <= {409, 503}  # 409: another call held the lease
        assert max(seconds for _, seconds in answers) < 5
        readers.shutdown()
        ready = requests.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and "rate_limit_storage" in ready.text
        pool.shutdown()
    finally:
        proxy.close()


def test_blackholed_postgres_never_holds_healthz(serve, pg_proxy, redis_url, tmp_path):
    proxy, through = pg_proxy
    url = serve(through, redis_url)
    token = mint(_user(through, tmp_path))
    proxy.blackhole()
    pool, calls = _in_flight(url, token, 8)
    wait_until(lambda: proxy.held() >= 8, 10, what="8 requests waiting on PostgreSQL")
    assert _healthz_time(url) < 1
    ready = requests.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 503 and "database" in ready.text
    proxy.passing()  # let the held requests end
    for call in calls:
        call.result(timeout=60)
    pool.shutdown()


def test_refused_postgres_gives_bounded_answers(serve, pg_proxy, redis_url, tmp_path):
    proxy, through = pg_proxy
    url = serve(through, redis_url)
    token = mint(_user(through, tmp_path))
    proxy.refuse()
    pool, calls = _in_flight(url, token, 4)
    answers = [call.result(timeout=30) for call in calls]
    assert {status for status, _ in answers} <= {500, 503}
    assert max(seconds for _, seconds in answers) < 5
    assert _healthz_time(url) < 1
    pool.shutdown()


def test_a_frozen_postgres_answers_503_in_bounded_time_and_runs_nothing_after(
    serve, pg_proxy, redis_url, fake_stripe, tmp_path
):
    """PostgreSQL accepts and never answers: the sweep call answers 503 within the request's
    deadline (10 s) and spends nothing; once the database is back, nothing that call asked for
    runs, and the caller's next call sweeps with all three calls left."""
    proxy, through = pg_proxy
    url = serve(through, redis_url)
    token = mint(_user(through, tmp_path))
    fake_stripe.state.seed(open_=5)
    warm = requests.get(
        f"{url}/v1/sweeps", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert warm.status_code == 200  # the worker's pool now holds a connection: it will hang
    proxy.blackhole()
    started = time.monotonic()
    frozen = requests.get(
        f"{url}/v1/active_checkout_sessions_and_expire_all",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert frozen.status_code == 503 and "database" in frozen.json()["message"]
    assert time.monotonic() - started < 15
    ready = requests.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 503 and "database" in ready.text
    proxy.passing()
    assert expires_seen(fake_stripe) == 0
    after = requests.get(
        f"{url}/v1/active_checkout_sessions_and_expire_all",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert after.status_code == 200, after.text
    assert after.headers["X-RateLimit-Remaining"] == "2"
    assert after.json()["data"]["expired_count"] == 5
    history = _run(sweeper_env(tmp_path, DATABASE_URL=through), "history", "--json")
    assert len(json.loads(history.stdout)) == 1  # one sweep ran: the one that was answered


def test_a_frozen_postgres_is_one_line_and_exit_3_for_the_sweep_command(
    pg_proxy, fake_stripe, tmp_path
):
    proxy, through = pg_proxy
    fake_stripe.state.seed(open_=5)
    proxy.blackhole()
    started = time.monotonic()
    result = _run(_env(tmp_path, fake_stripe.url, through), "sweep", "--yes", "--json", timeout=60)
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started < 15
    assert result.stderr.count("\n") == 1 and "DATABASE_URL" in result.stderr
    assert expires_seen(fake_stripe) == 0


def test_a_redis_blip_that_healed_costs_no_request_a_503(
    tmp_path, fake_stripe, postgres_url, redis_url
):
    """Connections the blip killed stay in the pools (the quota's, the job queue's); the next
    call finds them out and uses a fresh one instead of answering 503."""
    target = make_url(redis_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 6379)
    through = f"redis://127.0.0.1:{proxy.port}/{target.database or 0}"
    env = _env(
        tmp_path,
        fake_stripe.url,
        postgres_url,
        RATELIMIT_STORAGE_URI=through,
        SWEEPER_QUEUE_URL=through,
    )
    fake_stripe.state.seed(open_=3)
    try:
        with serving(env, tmp_path / "serve.log") as web:
            headers = {"Authorization": f"Bearer {mint(_user(postgres_url, tmp_path))}"}
            reads = f"{web.url}/v1/sweeps"
            assert requests.get(reads, headers=headers, timeout=10).status_code == 200
            proxy.cut()  # every pooled connection dies
            proxy.passing()  # and Redis is back at once
            answers = [requests.get(reads, headers=headers, timeout=10) for _ in range(3)]
            assert [answer.status_code for answer in answers] == [200] * 3
            queued = requests.post(
                f"{web.url}/v1/sweeps", json={"dry_run": True}, headers=headers, timeout=10
            )
            assert queued.status_code == 202, queued.text
    finally:
        proxy.close()
