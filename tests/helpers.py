"""What several test modules share: keys, the JWT secret, SDK clients, the running API, and how
a test says that a local service is missing."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import jwt
import pytest
import requests
import stripe
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.runs.queue.pool import stop_local_pools
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.users import add_user
from checkout_sweeper.web.factory import create_app

TEST_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
LIVE_KEY = "sk_live_51Habcdefghijklmnop"
JWT_SECRET = "test-secret-long-enough-for-hs256-hs384-and-hs512-0123456789abcdef"


def make_client(
    server: FakeStripeServer, key: str = TEST_KEY, **kwargs: Any
) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.url}, **kwargs)


def mint(
    user_id: object = None,
    *,
    secret: str = JWT_SECRET,
    alg: str = "HS256",
    ttl: int = 300,
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A token as an app would sign it; ``drop`` leaves standard claims out."""
    now = int(time.time())
    body = {"sub": None if user_id is None else str(user_id), "iat": now, "exp": now + ttl}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None and k not in drop}
    return jwt.encode(body, secret, algorithm=alg)


@contextlib.contextmanager
def serve_api(folder: Path, stripe_url: str, **overrides: str) -> Iterator[RunningApi]:
    """The app in this process on a real local port against ``stripe_url``; its environment is
    only these settings (an override of None removes one)."""
    env = {
        "STRIPE_API_KEY": TEST_KEY,
        "STRIPE_API_BASE": stripe_url,
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": f"sqlite:///{folder / 'api.sqlite3'}",
        "SWEEPER_MAX_RPS": "200",
        "SWEEPER_CONCURRENCY": "8",
        **overrides,
    }
    Database(env["DATABASE_URL"]).upgrade()  # as serve does before it builds the app
    app = create_app({k: v for k, v in env.items() if v is not None}, instance_path=folder)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield RunningApi(app, server)
    finally:
        server.shutdown()
        server.server_close()
        stop_local_pools(10.0, broker=app.extensions["checkout_sweeper"].broker)


class RunningApi:
    """The service on a real local port, plus helpers to seed users and mint tokens."""

    def __init__(self, app: Flask, server: BaseWSGIServer) -> None:
        self.app = app
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}"
        self.state = app.extensions["checkout_sweeper"]
        self.db: Database = self.state.db

    def add_user(self, email: str = "dev@example.com", customer: str | None = None) -> int:
        return int(add_user(self.db, email, customer)["id"])

    def token(self, user_id: object = None, **kwargs: Any) -> str:
        return mint(user_id, **kwargs)

    def sweep(
        self, token: str | None = None, *, path: str = "", headers: dict[str, str] | None = None
    ) -> requests.Response:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return requests.get(
            f"{self.url}/v1/active_checkout_sessions_and_expire_all{path}",
            headers=all_headers,
            timeout=120,
        )


def service_missing(what: str, how: str) -> NoReturn:
    """Skip with instructions on a developer machine; fail in CI, where they must run."""
    message = f"{what} is not reachable: {how}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: these tests must run)")
    pytest.skip(message)


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database of the caller's own, dropped afterwards."""
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
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        connection.close()
        engine.dispose()


class FakeClock:
    """A clock that only moves when someone sleeps: pacing tests run in no time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def conforms(response: requests.Response, spec: dict[str, Any]) -> dict[str, Any]:
    """The body of an answer, after checking it, its status and its required headers against
    the OpenAPI document's operation for the request's method."""
    import re
    from urllib.parse import urlsplit

    import jsonschema

    path = urlsplit(response.url).path
    assert response.request.method is not None
    operation = None
    for template, item in spec["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            operation = item.get(response.request.method.lower())
    assert operation is not None, f"{response.request.method} {path} is not in the document"
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{response.status_code} is not documented for {path}"
    schema = documented["content"]["application/json"]["schema"]
    jsonschema.validate(response.json(), {**schema, "components": spec["components"]})
    for name, declared in documented.get("headers", {}).items():
        if declared.get("required"):
            assert name in response.headers, f"{response.status_code} on {path} lacks {name}"
    return response.json()


@dataclasses.dataclass
class Ran:
    """What a command did, in the shape of ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


def run_command(env: Mapping[str, str | None], *args: str) -> Ran:
    """The real command line, in this process (no interpreter start-up): ``env`` replaces
    the environment for the call, as a fresh process would see it."""
    from click.testing import CliRunner

    from checkout_sweeper.cli import main

    unset: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    result = CliRunner().invoke(main, list(args), env={**unset, **env}, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)
