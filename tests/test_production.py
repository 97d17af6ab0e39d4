"""The production topology: gunicorn workers and instances sharing PostgreSQL and Redis.

These run the real ``checkout-sweeper serve`` processes against this machine's PostgreSQL and
Redis. Without those services they skip and say what to start; with CI=true they must run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jwt
import pytest
import requests
from sqlalchemy import create_engine, inspect, select

from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.store.models import SweepRun, SweptSession

from harness import COMMAND, Served, serving, sweeper_env, wait_for_expires, wait_until
from helpers import JWT_SECRET

pytestmark = pytest.mark.services
ENDPOINT = "/v1/active_checkout_sessions_and_expire_all"


@pytest.fixture
def stack(postgres_url, redis_url, fake_stripe, tmp_path):
    """Start ``serve`` instances and run CLI commands on one shared PostgreSQL and Redis."""
    env = sweeper_env(
        tmp_path,
        fake_stripe.url,
        DATABASE_URL=postgres_url,
        RATELIMIT_STORAGE_URI=redis_url,
        SWEEPER_MAX_RPS="100",
        SWEEPER_LEASE_TTL="2",
        LOG_LEVEL="WARNING",
    )
    servers = contextlib.ExitStack()

    class Stack:
        served: dict[str, Served] = {}

        def cli(self, *args: str) -> str:
            result = subprocess.run(
                [*COMMAND, *args], env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        def serve(self, workers: int) -> str:
            log = tmp_path / f"serve-{len(self.served)}.log"
            served = servers.enter_context(serving(env, log, "--workers", str(workers)))
            self.served[served.url] = served
            return served.url

        def user(self, email: str) -> str:
            return str(json.loads(self.cli("users", "add", "--email", email, "--json"))["id"])

        @staticmethod
        def token(user_id: str) -> str:
            now = int(time.time())
            return jwt.encode({"sub": user_id, "iat": now, "exp": now + 600}, JWT_SECRET)

        @staticmethod
        def call(url: str, token: str, timeout: float = 120) -> requests.Response:
            return requests.get(
                url + ENDPOINT, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
            )

    with servers:
        yield Stack()


def _sweep_under_way(
    stack: Any, fake_stripe: FakeStripeServer, url: str, sessions: int, *emails: str
) -> tuple[Future[requests.Response], ThreadPoolExecutor, list[str]]:
    """Seed a slow sweep, start it for the first user, return (future, pool, other tokens)."""
    fake_stripe.state.seed(open_=sessions)
    fake_stripe.state.faults.update({"latency_ms": 30})
    tokens = [stack.token(stack.user(email)) for email in emails]
    pool = ThreadPoolExecutor(1)
    running = pool.submit(stack.call, url, tokens[0])
    wait_for_expires(fake_stripe, 10)
    return running, pool, tokens[1:]


def test_migrations_are_idempotent_and_safe_when_run_together(postgres_url):
    env = {**os.environ, "DATABASE_URL": postgres_url}
    command = [*COMMAND, "db", "upgrade"]
    runs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(3)]
    assert [p.wait(timeout=60) for p in runs] == [0, 0, 0]
    assert subprocess.run(command, env=env, timeout=60).returncode == 0
    tables = set(inspect(create_engine(postgres_url)).get_table_names())
    assert {"users", "sweep_runs", "swept_sessions", "sweep_locks", "alembic_version"} <= tables


def _call_until_limited(statuses: list[int], call: Callable[[], int]) -> None:
    """Call again until the quota answers 429 (waiting out a sweep that runs: 409)."""

    def limited() -> bool:
        statuses.append(call())
        return statuses[-1] == 429

    wait_until(limited, 10, interval=0.2, what=f"a 429 after {statuses}")


def test_limit_is_exact_across_four_workers(stack):
    url = stack.serve(workers=4)
    token = stack.token(stack.user("four@example.com"))
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda _: stack.call(url, token).status_code, range(12)))
    assert set(statuses) <= {200, 409, 429}  # a 409 (sweep running) spends no quota
    _call_until_limited(statuses, lambda: stack.call(url, token).status_code)
    assert statuses.count(200) == 3, statuses
    ready = requests.get(f"{url}/readyz", timeout=5).json()
    assert ready["data"]["checks"] == {"database": "ok", "rate_limit_storage": "ok"}


def test_limit_is_counted_once_across_two_instances(stack):
    urls = [stack.serve(workers=2), stack.serve(workers=2)]
    token = stack.token(stack.user("two@example.com"))
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda i: stack.call(urls[i % 2], token).status_code, range(12)))
    _call_until_limited(statuses, lambda: stack.call(urls[len(statuses) % 2], token).status_code)
    assert statuses.count(200) == 3, statuses


def test_two_users_on_two_instances_get_one_sweep_and_one_prompt_409(stack, fake_stripe):
    first_url, second_url = stack.serve(workers=2), stack.serve(workers=2)
    first, pool, (bob,) = _sweep_under_way(
        stack, fake_stripe, first_url, 300, "alice@example.com", "bob@example.com"
    )
    started = time.monotonic()
    second = stack.call(second_url, bob)
    assert second.status_code == 409 and "already running" in second.json()["message"]
    assert time.monotonic() - started < 2
    assert first.result().status_code == 200
    pool.shutdown()
    assert first.result().json()["data"]["expired_count"] == 300
    assert fake_stripe.state.snapshot()["open_total"] == 0


def test_a_killed_worker_leaves_no_lock_and_its_run_shows_interrupted(
    stack, fake_stripe, postgres_url
):
    url = stack.serve(workers=2)
    doomed, pool, (dave,) = _sweep_under_way(
        stack, fake_stripe, url, 400, "carol@example.com", "dave@example.com"
    )
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        pid = connection.execute(select(SweepRun.pid)).scalar_one()
    engine.dispose()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(requests.RequestException):
        doomed.result()
    pool.shutdown()
    # The lease's holder no longer exists on this host, so the account is free at once.
    history = json.loads(stack.cli("history", "--json"))
    assert history[0]["status"] == "interrupted"
    retry = stack.call(url, dave)
    assert retry.status_code == 200, retry.text
    assert fake_stripe.state.snapshot()["open_total"] == 0


def test_sigterm_lets_a_running_sweep_finish(stack, fake_stripe):
    url = stack.serve(workers=1)
    answer, pool, _ = _sweep_under_way(stack, fake_stripe, url, 200, "erin@example.com")
    stack.served[url].process.send_signal(signal.SIGTERM)
    response = answer.result()
    pool.shutdown()
    assert response.status_code == 200
    assert response.json()["data"]["expired_count"] == 200
    history = json.loads(stack.cli("history", "--json"))
    assert history[0]["status"] == "succeeded"


def test_users_add_works_on_a_fresh_postgres_database(postgres_url):
    env = {**os.environ, "DATABASE_URL": postgres_url}
    result = subprocess.run(
        [*COMMAND, "users", "add", "--email", "pg@example.com", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["email"] == "pg@example.com"


def test_other_spellings_of_a_spent_id_never_sweep_across_two_workers(stack, fake_stripe):
    url = stack.serve(workers=2)
    uid = stack.user("frank@example.com")
    assert [stack.call(url, stack.token(uid)).status_code for _ in range(3)] == [200] * 3
    fake_stripe.state.seed(open_=5)
    for sub in (f"0{uid}", chr(0x0660 + int(uid)), chr(0xFF10 + int(uid)), int(uid)):
        now = int(time.time())
        token = jwt.encode({"sub": sub, "iat": now, "exp": now + 600}, JWT_SECRET)
        assert stack.call(url, token).status_code in (404, 429), sub
    assert fake_stripe.state.snapshot()["open_total"] == 5


def test_gunicorn_takes_a_12_kb_token_and_answers_an_oversized_header_in_json(stack):
    url = stack.serve(workers=1)
    uid = stack.user("grace@example.com")
    now = int(time.time())
    claims = {"sub": uid, "iat": now, "exp": now + 600, "roles": "r" * 12_000}
    big = jwt.encode(claims, JWT_SECRET)
    assert 12_000 < len(big) < 16_384
    assert stack.call(url, big).status_code == 200
    huge = jwt.encode({**claims, "roles": "r" * 40_000}, JWT_SECRET)
    response = stack.call(url, huge)
    assert response.status_code == 431
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["code"] == 431 and "16 KB" in response.json()["message"]


def _start_async(url: str, token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Prefer": "respond-async"}
    return requests.get(url + ENDPOINT, headers=headers, timeout=10)


def _follow(url: str, location: str, token: str) -> list[dict]:
    """Poll a sweep resource until it ends; every answer, and the pid that gave it."""
    answers = []

    def ended() -> bool:
        reply = requests.get(
            url + location, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert reply.status_code == 200, reply.text
        answers.append(reply.json()["data"])
        return answers[-1]["status"] not in ("queued", "running")

    wait_until(ended, 90, interval=0.1, what="the sweep to end")
    return answers


def test_an_async_sweep_is_followed_from_any_worker(stack, fake_stripe, postgres_url, tmp_path):
    url = stack.serve(workers=2)
    fake_stripe.state.seed(open_=150)
    fake_stripe.state.faults.update({"latency_ms": 20})
    token = stack.token(stack.user("hana@example.com"))
    accepted = _start_async(url, token)
    assert accepted.status_code == 202, accepted.text
    answers = _follow(url, accepted.headers["Location"], token)
    assert answers[-1]["status"] == "succeeded" and answers[-1]["expired_count"] == 150
    assert fake_stripe.state.snapshot()["open_total"] == 0
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        runner = connection.execute(select(SweepRun.pid)).scalar_one()
    engine.dispose()
    lines = stack.served[url].log.read_text().splitlines()
    access = [json.loads(line) for line in lines if '"gunicorn.access"' in line]
    pollers = {e["pid"] for e in access if e["path"] == accepted.headers["Location"]}
    assert pollers - {runner}, "only the worker running the sweep answered"
    sessions = accepted.headers["Location"] + "/sessions"
    seen, after = [], None
    while True:
        params = {"limit": 40, **({"starting_after": after} if after else {})}
        page = requests.get(
            url + sessions, headers={"Authorization": f"Bearer {token}"}, params=params, timeout=10
        ).json()["data"]
        seen += [row["session_id"] for row in page["data"] if row["outcome"] == "expired"]
        if not page["has_more"]:
            break
        after = page["data"][-1]["session_id"]
    assert len(seen) == len(set(seen)) == 150
    stranger = stack.token(stack.user("jo@example.com"))
    for path in (accepted.headers["Location"], sessions):
        other = requests.get(
            url + path, headers={"Authorization": f"Bearer {stranger}"}, timeout=10
        )
        assert other.status_code == 404


def test_sigterm_during_an_async_sweep_records_it_interrupted(stack, fake_stripe, postgres_url):
    url = stack.serve(workers=1)
    fake_stripe.state.seed(open_=800)  # about 8 s at 100 requests/s: SIGTERM comes mid-sweep
    fake_stripe.state.faults.update({"latency_ms": 30})
    token = stack.token(stack.user("ivan@example.com"))
    accepted = _start_async(url, token)
    assert accepted.status_code == 202
    wait_for_expires(fake_stripe, 40)
    master = stack.served[url].process
    master.send_signal(signal.SIGTERM)
    master.wait(timeout=60)
    history = json.loads(stack.cli("history", "--json"))
    assert history[0]["status"] == "interrupted"
    expired = 800 - fake_stripe.state.snapshot()["open_total"]
    assert 0 < expired < 800
    assert history[0]["expired_count"] == history[0]["records"] == expired


def test_sigterm_while_expire_answers_are_lost_leaves_a_row_for_every_expired_session(
    stack, fake_stripe, postgres_url
):
    """Stripe expires, then the answer is lost (60% of expires); a graceful stop comes while
    retries are pending: every session Stripe expired has a row (expired, or unknown when the
    stop came before the retry), and no row claims a session Stripe did not expire."""
    url = stack.serve(workers=1)
    fake_stripe.state.seed(open_=800)
    fake_stripe.state.faults.update({"latency_ms": 30, "lost_rate": 0.6})
    accepted = _start_async(url, stack.token(stack.user("lost@example.com")))
    assert accepted.status_code == 202
    wait_for_expires(fake_stripe, 60)
    master = stack.served[url].process
    master.send_signal(signal.SIGTERM)
    master.wait(timeout=60)
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        rows = dict(connection.execute(select(SweptSession.session_id, SweptSession.outcome)).all())
    engine.dispose()
    with fake_stripe.state.lock:
        expired_at_stripe = set(fake_stripe.state.stats.expired_by_request)
    assert 0 < len(expired_at_stripe) < 800
    assert {s for s, outcome in rows.items() if outcome in ("expired", "unknown")} == (
        expired_at_stripe
    )
    assert set(rows) == expired_at_stripe


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, keyed by name and sorted labels (the exposition must parse)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{url}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_add_up_across_two_workers(stack, fake_stripe):
    url = stack.serve(workers=2)
    fake_stripe.state.seed(open_=80)
    tokens = [stack.token(stack.user(f"m{i}@example.com")) for i in range(2)]
    statuses = [stack.call(url, token).status_code for token in tokens for _ in range(2)]
    assert statuses.count(200) == 4
    for _ in range(6):  # spread over both workers
        requests.get(f"{url}/healthz", timeout=5, headers={"Connection": "close"})
    samples = _scrape(url)
    expired = len(fake_stripe.state.stats.expired_by_request)
    assert expired == 80
    assert samples[("checkout_sweeper_sessions_total", (("outcome", "expired"),))] == expired
    route = "/v1/active_checkout_sessions_and_expire_all"
    calls = sum(
        value
        for (name, labels), value in samples.items()
        if name == "checkout_sweeper_http_requests_total" and ("route", route) in labels
    )
    assert calls == 4
    ok_expires = samples[
        ("checkout_sweeper_stripe_requests_total", (("operation", "expire"), ("result", "ok")))
    ]
    assert ok_expires == fake_stripe.state.snapshot()["requests"]["expire"]
    finished = samples[
        ("checkout_sweeper_sweeps_finished_total", (("outcome", "succeeded"), ("trigger", "api")))
    ]
    assert finished == 4
    assert samples[("checkout_sweeper_sweeps_running", ())] == 0
