"""Shared fixtures: the project's fake Stripe over real HTTP, and SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from checkout_sweeper.fake_stripe import FakeStripeServer

TEST_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
LIVE_KEY = "sk_live_51Habcdefghijklmnop"


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripeServer]:
    """A fresh, empty fake Stripe on a free port, stopped after the test."""
    with FakeStripeServer() as server:
        yield server


@pytest.fixture
def stripe_client(fake_stripe: FakeStripeServer) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": fake_stripe.url})


def make_client(server: FakeStripeServer, key: str = TEST_KEY, **kwargs) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.url}, **kwargs)


JWT_SECRET = "test-secret-long-enough-for-hs256-hs384-and-hs512-0123456789abcdef"


class RunningApi:
    """The service on a real local port, plus helpers to seed users and mint tokens."""

    def __init__(self, app, server) -> None:
        self.app = app
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}"
        self.state = app.extensions["checkout_sweeper"]
        self.db = self.state.db

    def add_user(self, email: str = "dev@example.com", customer: str | None = None) -> int:
        from checkout_sweeper.models import User

        with self.db.session() as session:
            user = User(email=email, stripe_customer_id=customer)
            session.add(user)
            session.flush()
            return user.id

    def token(
        self,
        user_id: object = None,
        *,
        secret: str = JWT_SECRET,
        alg: str = "HS256",
        ttl: int = 300,
        drop: tuple[str, ...] = (),
        **claims,
    ) -> str:
        import time

        import jwt

        now = int(time.time())
        body = {"sub": None if user_id is None else str(user_id), "iat": now, "exp": now + ttl}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None and k not in drop}
        return jwt.encode(body, secret, algorithm=alg)

    def sweep(self, token: str | None = None, *, path: str = "", headers: dict | None = None):
        import requests

        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return requests.get(
            f"{self.url}/v1/active_checkout_sessions_and_expire_all{path}",
            headers=all_headers,
            timeout=120,
        )


@pytest.fixture
def start_api(tmp_path, fake_stripe):
    """Factory: ``start_api(**env_overrides)`` serves a fresh app against ``fake_stripe``."""
    import threading

    from werkzeug.serving import make_server

    from checkout_sweeper.app import create_app

    servers = []

    def start(**overrides: str) -> RunningApi:
        env = {
            "STRIPE_API_KEY": TEST_KEY,
            "STRIPE_API_BASE": fake_stripe.url,
            "JWT_SECRET": JWT_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path / f'api{len(servers)}.sqlite3'}",
            "SWEEPER_MAX_RPS": "200",
            "SWEEPER_CONCURRENCY": "8",
        }
        env.update(overrides)
        env = {k: v for k, v in env.items() if v is not None}
        app = create_app(env, instance_path=tmp_path)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return RunningApi(app, server)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def api(start_api) -> RunningApi:
    return start_api()


# real services: PostgreSQL and Redis --------------------------------------------------------------
def service_missing(what: str, how: str) -> None:
    """Skip with instructions on a developer machine; fail in CI, where they must run."""
    import os

    message = f"{what} is not reachable: {how}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: these tests must run)")
    pytest.skip(message)


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    import os
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    base = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        connection = engine.connect()
    except OperationalError:
        service_missing(
            "PostgreSQL",
            "start it (pg_ctlcluster 15 main start) on 127.0.0.1:5432 with trust auth and a "
            "database 'test', or set TEST_POSTGRES_URL",
        )
    name = f"sweeper_{uuid.uuid4().hex[:12]}"
    connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.rsplit("/", 1)[0] + "/" + name
    connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    connection.close()
    engine.dispose()


@pytest.fixture
def redis_url():
    """Redis database 9, emptied for this test."""
    import os

    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        service_missing("Redis", "start redis-server on 127.0.0.1:6379, or set TEST_REDIS_URL")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
