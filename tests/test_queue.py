"""Sweeps carried by the job queue to worker processes: a real ``serve``, real ``worker``
processes, Redis for the queue and the quota, the fake Stripe over HTTP."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.runs.lease import AccountLease
from checkout_sweeper.runs.queue.consumer import SweepRunner
from checkout_sweeper.runs.queue.producer import make_broker, record_queued
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun

from harness import (
    free_port,
    queued_env,
    serving,
    wait_for_expires,
    wait_until,
    working,
)
from helpers import mint, run_command
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.services
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def env(
    tmp_path: Path, fake_stripe: FakeStripeServer, redis_url: str, postgres_url: str
) -> dict[str, str]:
    return queued_env(tmp_path, fake_stripe.url, postgres_url, redis_url, SWEEPER_LEASE_TTL="6")


def _user_token(env: dict[str, str]) -> dict[str, str]:
    added = run_command(env, "users", "add", "--email", "q@example.com", "--json")
    return {"Authorization": f"Bearer {mint(json.loads(added.stdout)['id'])}"}


def _sweep(url: str, auth: dict[str, str]) -> dict:
    answer = requests.get(
        f"{url}/v1/active_checkout_sessions_and_expire_all", headers={**auth, **ASYNC}, timeout=30
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["data"]


def _state(url: str, auth: dict[str, str], sweep_id: str) -> dict:
    answer = requests.get(f"{url}/v1/sweeps/{sweep_id}", headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def _ended(url: str, auth: dict[str, str], sweep_id: str) -> dict:
    seen: list[dict] = []

    def done() -> bool:
        seen.append(_state(url, auth, sweep_id))
        return seen[-1]["status"] not in ("queued", "running")

    wait_until(done, 120, interval=1.0, what="the sweep to end")  # reads: 120 a minute
    return seen[-1]


def test_an_async_sweep_waits_queued_then_a_worker_process_runs_it(env, fake_stripe, tmp_path):
    fake_stripe.state.seed(open_=120)
    fake_stripe.state.faults.update({"latency_ms": 20})
    auth = _user_token(env)
    with serving(env, tmp_path / "serve.log", "--workers", "2") as web:
        accepted = _sweep(web.url, auth)
        assert accepted["status"] == "queued"
        queued = _state(web.url, auth, accepted["sweep_id"])
        assert queued["worker"] is None and queued["queued_at"] and queued["attempts"] == 0
        assert fake_stripe.state.snapshot()["requests"].get("expire", 0) == 0  # web ran nothing
        assert "checkout_sweeper_queue_depth 1.0" in requests.get(f"{web.url}/metrics").text
        port = free_port()
        with working(env, tmp_path / "worker.log", "--metrics-port", str(port)) as worker:
            final = _ended(web.url, auth, accepted["sweep_id"])
            scraped = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'checkout_sweeper_queue_sweeps_total{event="taken"} 1.0' in scraped
        assert 'checkout_sweeper_sessions_total{outcome="expired"} 120.0' in scraped
    assert final["status"] == "succeeded", final
    assert final["worker"]["pid"] == worker.pid and final["worker"]["pid"] != web.process.pid
    assert final["attempts"] == 1 and final["expired_count"] == 120
    assert final["started_at"] > final["queued_at"]  # it started when the worker took it
    assert fake_stripe.state.snapshot()["open_total"] == 0


def test_a_stopped_worker_hands_its_sweep_back_and_another_finishes_it(env, fake_stripe, tmp_path):
    fake_stripe.state.seed(open_=400)
    fake_stripe.state.faults.update({"latency_ms": 20})
    auth = _user_token(env)
    slow = {**env, "SWEEPER_MAX_RPS": "40"}
    with serving(env, tmp_path / "serve.log") as web:
        with working(slow, tmp_path / "first.log") as first:
            sweep_id = _sweep(web.url, auth)["sweep_id"]
            wait_for_expires(fake_stripe, 40, alive=first)
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=30) == 0
        handed = _state(web.url, auth, sweep_id)
        assert handed["status"] == "queued" and handed["attempts"] == 1, handed
        assert 0 < handed["expired_count"] < 400
        with working(env, tmp_path / "second.log") as second:
            final = _ended(web.url, auth, sweep_id)
    assert final["status"] == "succeeded" and final["attempts"] == 2, final
    assert final["worker"]["pid"] == second.pid
    assert final["expired_count"] + final["already_closed_count"] >= 400 - 8
    assert fake_stripe.state.snapshot()["open_total"] == 0


def test_a_limit_counts_what_earlier_attempts_expired(env, fake_stripe, tmp_path):
    """A ``limit`` is the sweep's, not each attempt's: handed back by a stopping worker and
    finished by another, it expires no more than asked, and its counters never go back."""
    fake_stripe.state.seed(open_=300)
    fake_stripe.state.faults.update({"latency_ms": 20})
    auth = _user_token(env)
    slow = {**env, "SWEEPER_MAX_RPS": "40"}
    with serving(env, tmp_path / "serve.log") as web:
        with working(slow, tmp_path / "first.log") as first:
            answer = requests.post(
                f"{web.url}/v1/sweeps", json={"limit": 120}, headers=auth, timeout=30
            )
            sweep_id = answer.json()["data"]["sweep_id"]
            wait_for_expires(fake_stripe, 40, alive=first)
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=30) == 0
        handed = _state(web.url, auth, sweep_id)
        assert handed["status"] == "queued" and 0 < handed["expired_count"] < 120, handed
        seen = [handed["expired_count"]]

        def reached() -> bool:
            seen.append(_state(web.url, auth, sweep_id)["expired_count"])
            return seen[-1] >= 120

        with working(env, tmp_path / "second.log"):
            wait_until(reached, 60, interval=0.5, what="the limit")
            final = _ended(web.url, auth, sweep_id)
    assert seen == sorted(seen)  # the counters only grow across the handover
    assert final["expired_count"] == 120 and final["attempts"] == 2, final
    assert fake_stripe.state.snapshot()["open_total"] == 300 - 120


def _sessions(url: str, auth: dict[str, str], sweep_id: str) -> set[str]:
    ids: list[str] = []
    after = None
    while True:
        params: dict[str, str | int] = {
            "limit": 100,
            **({"starting_after": after} if after else {}),
        }
        answer = requests.get(
            f"{url}/v1/sweeps/{sweep_id}/sessions", headers=auth, params=params, timeout=30
        )
        page = answer.json()["data"]
        ids += [row["session_id"] for row in page["data"]]
        if not page["has_more"]:
            return set(ids)
        after = ids[-1]


@contextlib.contextmanager
def _sweep_in_one_of_two_workers(
    env: dict[str, str], fake_stripe: FakeStripeServer, tmp_path: Path, expires: int
) -> Iterator[tuple[str, str, dict[str, str], subprocess.Popen, subprocess.Popen]]:
    """A sweep of 400 sessions under way in one of two workers: the web URL, the sweep id,
    the caller's headers, the worker running it and the other one."""
    fake_stripe.state.seed(open_=400)
    fake_stripe.state.faults.update({"latency_ms": 20})
    auth = _user_token(env)
    slow = {**env, "SWEEPER_MAX_RPS": "40"}
    with (
        serving(env, tmp_path / "serve.log") as web,
        working(slow, tmp_path / "a.log") as first,
        working(slow, tmp_path / "b.log") as second,
    ):
        sweep_id = _sweep(web.url, auth)["sweep_id"]
        wait_for_expires(fake_stripe, expires, alive=web.process)
        running = _state(web.url, auth, sweep_id)["worker"]["pid"]
        busy, other = (first, second) if running == first.pid else (second, first)
        yield web.url, sweep_id, auth, busy, other


def test_when_the_worker_running_a_sweep_dies_the_other_finishes_it(env, fake_stripe, tmp_path):
    with _sweep_in_one_of_two_workers(env, fake_stripe, tmp_path, 60) as under_way:
        url, sweep_id, auth, victim, survivor = under_way
        victim.kill()  # kill -9: no chance to record or hand anything back
        victim.wait(timeout=10)
        final = _ended(url, auth, sweep_id)
        listed = _sessions(url, auth, sweep_id)
    assert final["status"] == "succeeded" and final["attempts"] == 2, final
    assert final["worker"]["pid"] == survivor.pid
    assert fake_stripe.state.snapshot()["open_total"] == 0
    with fake_stripe.state.lock:
        expired = set(fake_stripe.state.stats.expired_by_request)
    assert expired <= listed  # journaled before they left: the in-flight ones are rows too


def test_a_worker_frozen_past_its_lease_loses_the_sweep_to_another(env, fake_stripe, tmp_path):
    """SIGSTOP past the lease (a long pause, a VM frozen): another worker takes the sweep up
    under the same id and finishes it; the frozen one, woken, writes nothing over it, and
    the sweep never reads interrupted."""
    with _sweep_in_one_of_two_workers(env, fake_stripe, tmp_path, 40) as under_way:
        url, sweep_id, auth, frozen, other = under_way
        frozen.send_signal(signal.SIGSTOP)
        seen: list[str] = []

        def taken_over() -> bool:
            state = _state(url, auth, sweep_id)
            seen.append(state["status"])
            return state["worker"] is not None and state["worker"]["pid"] == other.pid

        try:
            wait_until(taken_over, 60, interval=1.0, what="the other worker to take it up")
        finally:
            frozen.send_signal(signal.SIGCONT)
        final = _ended(url, auth, sweep_id)
    assert "interrupted" not in seen
    assert final["status"] == "succeeded" and final["worker"]["pid"] == other.pid, final
    assert fake_stripe.state.snapshot()["open_total"] == 0
    assert fake_stripe.state.snapshot()["sessions_expired_twice"] == 0


def test_a_sweep_whose_account_stays_busy_ends_failed_after_the_busy_wait(
    env, postgres_url, fake_stripe, tmp_path
):
    """Another sweep holds the account when the worker takes the message: it is tried again
    with backoff for ``SWEEPER_BUSY_WAIT`` seconds, then the run ends failed saying why (it
    used to be dropped after its last try and stay queued for ever)."""
    fake_stripe.state.seed(open_=10)
    auth = _user_token(env)
    db = Database(postgres_url)
    with serving(env, tmp_path / "serve.log") as web:
        sweep_id = _sweep(web.url, auth)["sweep_id"]
        account = _state(web.url, auth, sweep_id)["account"]
        held = AccountLease(db, account, "another-sweep", ttl_s=120)
        held.acquire()
        port = free_port()
        busy = {**env, "SWEEPER_BUSY_WAIT": "3"}
        with working(busy, tmp_path / "worker.log", "--metrics-port", str(port)):
            final = _ended(web.url, auth, sweep_id)
            scraped = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        held.release()
    assert final["status"] == "failed" and final["finished_at"], final
    assert final["error"].startswith("the account stayed busy for 3 s (SWEEPER_BUSY_WAIT): ")
    assert "already running" in final["error"], final
    assert 'checkout_sweeper_queue_sweeps_total{event="given_up"} 1.0' in scraped
    assert fake_stripe.state.snapshot()["requests"].get("expire", 0) == 0


def test_a_worker_cut_off_from_the_database_takes_the_sweep_once_it_is_back(
    env, postgres_url, fake_stripe, tmp_path
):
    """The worker's link to PostgreSQL is cut when it takes a sweep: it says so and the queue
    tries again with backoff; once the link is back, the sweep runs (it used to be given up
    at the first try)."""
    fake_stripe.state.seed(open_=20)
    auth = _user_token(env)
    target = make_url(postgres_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    through = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    log = tmp_path / "worker.log"
    try:
        with (
            serving(env, tmp_path / "serve.log") as web,
            working({**env, "DATABASE_URL": through}, log) as worker,
        ):
            proxy.cut()
            sweep_id = _sweep(web.url, auth)["sweep_id"]
            waiting = f"sweep {sweep_id} waits: the database cannot be reached"
            wait_until(
                lambda: waiting in log.read_text(), 30, what="the worker to wait", alive=worker
            )
            proxy.passing()
            final = _ended(web.url, auth, sweep_id)
    finally:
        proxy.close()
    assert final["status"] == "succeeded" and final["expired_count"] == 20, final
    assert final["worker"]["pid"] == worker.pid


def test_a_message_the_queue_gives_up_ends_its_run_failed_with_the_error(
    env, postgres_url, tmp_path
):
    """The queue's word that it stopped trying a sweep (an error no retry mends) ends the
    run failed with the error's last line, instead of leaving it queued for ever."""
    settings = Settings.from_env(env, instance_path=tmp_path)
    db = Database(postgres_url)
    db.upgrade()
    broker = make_broker(settings)
    sweep_id = "f" * 32
    record_queued(db, {"id": sweep_id, "trigger": "api", "account": "acct_1"})
    traceback = "Traceback (most recent call last):\n  ...\nValueError: no such scope field"
    SweepRunner(settings, db, broker).given_up(
        {"args": [sweep_id], "options": {"traceback": traceback}}, {"retries": 0}
    )
    broker.close()
    with db.session() as session:
        run = session.get(SweepRun, sweep_id)
        assert run is not None
        assert (run.status, run.error) == (
            "failed",
            "the worker could not run it: ValueError: no such scope field",
        )


def _delete(url: str, auth: dict[str, str], sweep_id: str) -> requests.Response:
    return requests.delete(f"{url}/v1/sweeps/{sweep_id}", headers=auth, timeout=30)


def test_a_queued_sweep_that_is_canceled_never_starts(env, fake_stripe, tmp_path):
    fake_stripe.state.seed(open_=50)
    auth = _user_token(env)
    with serving(env, tmp_path / "serve.log") as web:
        sweep_id = _sweep(web.url, auth)["sweep_id"]
        canceled = _delete(web.url, auth, sweep_id)
        assert canceled.status_code == 200 and canceled.json()["data"]["status"] == "canceled"
        with working(env, tmp_path / "worker.log"):
            time.sleep(3)  # time for the worker to take the message, and drop it
            assert _state(web.url, auth, sweep_id)["status"] == "canceled"
    assert fake_stripe.state.snapshot()["requests"].get("expire", 0) == 0


def test_a_sweep_running_in_a_worker_is_canceled_within_3_s(env, fake_stripe, tmp_path):
    fake_stripe.state.seed(open_=400)
    fake_stripe.state.faults.update({"latency_ms": 20})
    auth = _user_token(env)
    with (
        serving(env, tmp_path / "serve.log") as web,
        working({**env, "SWEEPER_MAX_RPS": "40"}, tmp_path / "worker.log") as worker,
    ):
        sweep_id = _sweep(web.url, auth)["sweep_id"]
        wait_for_expires(fake_stripe, 40, alive=worker)
        started = time.monotonic()
        canceled = _delete(web.url, auth, sweep_id)
        assert canceled.status_code == 200 and time.monotonic() - started < 3.5, canceled.text
        sent = fake_stripe.state.snapshot()["requests"]["expire"]
        time.sleep(2)
        assert fake_stripe.state.snapshot()["requests"]["expire"] == sent
        assert worker.poll() is None  # the worker goes on, ready for the next sweep
    assert canceled.json()["data"]["status"] == "canceled"
    assert 0 < fake_stripe.state.snapshot()["open_total"] < 400


def test_history_shows_where_a_queued_sweep_ran_and_its_attempts(env, fake_stripe, tmp_path):
    fake_stripe.state.seed(open_=30)
    auth = _user_token(env)
    with serving(env, tmp_path / "serve.log") as web:
        sweep_id = _sweep(web.url, auth)["sweep_id"]
        with working(env, tmp_path / "worker.log") as worker:
            _ended(web.url, auth, sweep_id)
    shown = run_command(env, "history", "show", sweep_id[:8]).stdout
    assert re.search(rf"worker\s+\S+:{worker.pid}\b", shown), shown
    assert re.search(r"attempts\s+1\b", shown) and re.search(r"queued_at\s+20\d\d-", shown)


def test_a_synchronous_call_can_be_run_by_a_worker_and_awaited(env, fake_stripe, tmp_path):
    fake_stripe.state.seed(open_=40)
    auth = _user_token(env)
    awaited = {**env, "SWEEPER_SYNC_WAIT": "60"}
    url = "/v1/active_checkout_sessions_and_expire_all"
    with (
        serving(awaited, tmp_path / "serve.log") as web,
        working(env, tmp_path / "worker.log") as worker,
    ):
        answer = requests.get(f"{web.url}{url}", headers=auth, timeout=90)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["expired_count"] == 40 and data["remaining_open_sessions"] == []
        assert _state(web.url, auth, data["sweep_id"])["worker"]["pid"] == worker.pid
    fake_stripe.state.seed(open_=5)
    with serving({**env, "SWEEPER_SYNC_WAIT": "2"}, tmp_path / "serve2.log") as web:
        started = time.monotonic()
        waited = requests.get(f"{web.url}{url}", headers=auth, timeout=90)  # no worker now
        took = time.monotonic() - started
    assert waited.status_code == 202 and "Location" in waited.headers
    assert "Preference-Applied" not in waited.headers  # the client did not ask for it
    assert 2 <= took < 10


def test_the_web_process_is_ready_with_no_worker_running(env, tmp_path):
    with serving(env, tmp_path / "serve.log") as web:
        ready = requests.get(f"{web.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text  # queued sweeps wait; the web answers


def test_a_queued_sweep_whose_message_was_lost_is_sent_again(env, postgres_url, tmp_path):
    """A Redis that lost a message (a restart, a blip during a delayed retry) loses no sweep:
    a run queued a while with no message anywhere in the queue is sent again, once; one whose
    message is there is left alone."""
    from datetime import timedelta

    from dramatiq.brokers.redis import RedisBroker
    from sqlalchemy import update

    from checkout_sweeper.runs.queue.producer import _carried, enqueue_sweep, requeue_lost
    from checkout_sweeper.store.models import utcnow

    settings = Settings.from_env(env, instance_path=tmp_path)
    db = Database(postgres_url)
    db.upgrade()
    broker = make_broker(settings)
    assert isinstance(broker, RedisBroker)
    lost, carried = "a" * 32, "b" * 32
    for sweep_id in (lost, carried):
        record_queued(db, {"id": sweep_id, "trigger": "api", "account": "acct_1"})
    with db.session() as session:
        long_ago = utcnow() - timedelta(minutes=2)
        session.execute(update(SweepRun).values(queued_at=long_ago))
    enqueue_sweep(broker, carried)
    try:
        assert requeue_lost(db, broker) == [lost]
        assert _carried(broker) == {lost, carried}
        assert requeue_lost(db, broker) == []  # one look at a time, and it is carried now
    finally:
        for key in broker.client.scan_iter(match=f"{broker.namespace}:*"):
            broker.client.delete(key)
        broker.close()
