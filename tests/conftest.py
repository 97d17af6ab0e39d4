"""Shared fixtures: the fake Stripe over real HTTP, the API on a real port, PostgreSQL, Redis.

Plain helpers live in ``helpers.py``, which test modules import directly."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from checkout_sweeper.fake_stripe import FakeStripeServer, FakeStripeState
from checkout_sweeper.store.database import Database

from helpers import RunningApi, fresh_postgres, make_client, serve_api, service_missing

FAULT_SEED = 20261202


@pytest.fixture(autouse=True)
def own_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test (and every command it runs) keeps its data in its own folder, never in the
    user's real data directory."""
    monkeypatch.setenv("SWEEPER_INSTANCE_PATH", str(tmp_path / "data"))


@pytest.fixture
def db(tmp_path: Path) -> Database:
    """A fresh SQLite database, migrated, in the test's own folder."""
    database = Database(f"sqlite:///{tmp_path / 'sweeper.sqlite3'}")
    database.upgrade()
    return database


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripeServer]:
    """A fresh, empty fake Stripe on a free port, stopped after the test. Its injected faults
    come from a seeded generator, so a test that draws them sees the same draws on every run."""
    with FakeStripeServer(FakeStripeState(seed=FAULT_SEED)) as server:
        yield server


@pytest.fixture
def shop(fake_stripe: FakeStripeServer) -> dict[str, dict[str, Any]]:
    """Twelve open sessions with known ages, customers, payment links and metadata; returns
    each session's fields by id."""
    now = int(time.time())
    made: dict[str, dict[str, Any]] = {}
    for i in range(12):
        params = {
            "customer": "cus_Alice001" if i % 3 == 0 else "cus_Bob00002",
            "metadata": {"run": "ci-7" if i % 2 == 0 else "ci-8", "cart": f"c{i}"},
        }
        if i % 4 == 0:
            params["payment_link"] = "plink_Spring01"
        created = now - (12 - i) * 3600 - 1800  # from 12.5 hours old to 1.5 hours old
        session = fake_stripe.state.create_session(False, "", params, created=created)
        made[session["id"]] = {**params, "created": created}
    return made


@pytest.fixture
def stripe_client(fake_stripe: FakeStripeServer) -> stripe.StripeClient:
    return make_client(fake_stripe)


@pytest.fixture
def start_api(tmp_path, fake_stripe):
    """Factory: ``start_api(**env_overrides)`` serves a fresh app against ``fake_stripe``."""
    started: list[RunningApi] = []
    with contextlib.ExitStack() as servers:

        def start(**overrides: str) -> RunningApi:
            database = f"sqlite:///{tmp_path / f'api{len(started)}.sqlite3'}"
            overrides = {"DATABASE_URL": database, **overrides}
            started.append(servers.enter_context(serve_api(tmp_path, fake_stripe.url, **overrides)))
            return started[-1]

        yield start


@pytest.fixture
def api(start_api: Callable[..., RunningApi]) -> RunningApi:
    return start_api()


# real services: PostgreSQL and Redis --------------------------------------------------------------
@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    with fresh_postgres() as url:
        yield url


REDIS_TEST_DATABASE = 15  # the README names it; tests add and remove only keys of their own


@pytest.fixture
def redis_url(monkeypatch):
    """The test Redis database (``TEST_REDIS_URL``, default database 15) with a key prefix of
    this test's own: commands and servers it starts count under it (``RATELIMIT_KEY_PREFIX``)
    and queue under it (``SWEEPER_QUEUE_NAMESPACE``), and only keys under it are deleted
    afterwards. No database is ever flushed."""
    import os
    import uuid

    import redis

    url = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_TEST_DATABASE}")
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        service_missing("Redis", "start redis-server on 127.0.0.1:6379, or set TEST_REDIS_URL")
    prefix = f"checkout-sweeper-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("RATELIMIT_KEY_PREFIX", prefix)
    monkeypatch.setenv("SWEEPER_QUEUE_NAMESPACE", prefix)  # the job queue's keys, too
    yield url
    for key in client.scan_iter(match=f"*{prefix}*", count=500):
        client.delete(key)
    client.close()
