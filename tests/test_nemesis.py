"""A seeded random schedule of faults against the production shape (serve, two queue workers,
PostgreSQL and Redis each behind a proxy that can be cut), then Stripe's own log of expires
held against the audit: nothing lost, nothing claimed that Stripe did not do, nothing done
twice, nothing stuck, nothing interrupted that the queue carries.

CI runs one short round (``NEMESIS_ROUNDS``, default 1, and ``NEMESIS_SEED``); a longer run is
``NEMESIS_ROUNDS=5 python -m pytest -n 0 tests/test_nemesis.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.store.models import SweepRun, SweptSession

from harness import queued_env, serving, wait_until, working
from helpers import mint, run_command
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.services
ROUNDS = int(os.environ.get("NEMESIS_ROUNDS", "1"))
SEED = int(os.environ.get("NEMESIS_SEED", "20261207"))
FAULTS_PER_ROUND = 2
HEAL_S = 90  # every sweep of a round ends within this long after its faults healed


class Shape:
    """The processes and the proxies the nemesis acts on."""

    def __init__(self, env: dict[str, str], folder: Path, pg: TcpProxy, rd: TcpProxy) -> None:
        self.env, self.folder, self.pg, self.rd = env, folder, pg, rd
        self.workers: list[subprocess.Popen] = []
        self._stack = contextlib.ExitStack()

    def worker(self) -> None:
        log = self.folder / f"worker{len(self.workers)}.log"
        self.workers.append(self._stack.enter_context(working(self.env, log)))

    def close(self) -> None:
        self._stack.close()


def _faults(shape: Shape, fake: FakeStripeServer) -> dict[str, Callable[[], None]]:
    def kill_worker() -> None:
        shape.workers.pop(0).kill()  # kill -9, then a new worker takes its place
        shape.worker()

    def stop_worker() -> None:
        shape.workers.pop(0).send_signal(signal.SIGTERM)  # a deploy
        shape.worker()

    def cut(proxy: TcpProxy) -> Callable[[], None]:
        def blip() -> None:
            proxy.cut()
            time.sleep(3)
            proxy.passing()

        return blip

    def lose_answers() -> None:
        fake.state.faults.update({"lost_rate": 0.1})
        time.sleep(3)
        fake.state.faults.update({"lost_rate": 0})

    return {
        "kill -9 a worker": kill_worker,
        "SIGTERM a worker": stop_worker,
        "cut PostgreSQL": cut(shape.pg),
        "cut Redis": cut(shape.rd),
        "lose Stripe's answers": lose_answers,
    }


@pytest.fixture
def shape(
    tmp_path: Path, fake_stripe: FakeStripeServer, postgres_url: str, redis_url: str
) -> Iterator[Shape]:
    pg_url, rd_url = make_url(postgres_url), make_url(redis_url)
    pg = TcpProxy(pg_url.host or "127.0.0.1", pg_url.port or 5432)
    rd = TcpProxy(rd_url.host or "127.0.0.1", rd_url.port or 6379)
    through_pg = pg_url.set(host="127.0.0.1", port=pg.port).render_as_string(hide_password=False)
    through_rd = f"redis://127.0.0.1:{rd.port}/{rd_url.database or 0}"
    env = queued_env(
        tmp_path,
        fake_stripe.url,
        through_pg,
        through_rd,
        SWEEPER_LEASE_TTL="6",
        SWEEPER_MAX_RPS="40",
    )
    made = Shape(env, tmp_path, pg, rd)
    try:
        for _ in range(2):
            made.worker()
        yield made
    finally:
        made.close()
        pg.close()
        rd.close()


def _audit(postgres_url: str) -> tuple[list[SweepRun], dict[str, set[str]]]:
    """Every run, and for each outcome the sessions with a row of it (any run)."""
    engine = create_engine(postgres_url)
    with Session(engine) as session:
        runs = list(session.scalars(select(SweepRun)))
        rows = session.execute(select(SweptSession.session_id, SweptSession.outcome)).all()
    engine.dispose()
    outcomes: dict[str, set[str]] = {}
    for session_id, outcome in rows:
        outcomes.setdefault(outcome, set()).add(session_id)
    return runs, outcomes


def test_a_seeded_schedule_of_faults_loses_nothing(shape, fake_stripe, postgres_url, tmp_path):
    chooser = random.Random(SEED)
    faults = _faults(shape, fake_stripe)
    fake_stripe.state.faults.update({"latency_ms": 20})
    with serving(shape.env, tmp_path / "serve.log") as web:
        for round_ in range(ROUNDS):  # a user a round: the quota is 3 sweeps an hour
            email = f"n{round_}@example.com"
            added = run_command(shape.env, "users", "add", "--email", email, "--json")
            headers = {"Authorization": f"Bearer {mint(json.loads(added.stdout)['id'])}"}
            fake_stripe.state.seed(open_=150)
            started = requests.post(f"{web.url}/v1/sweeps", json={}, headers=headers, timeout=30)
            assert started.status_code == 202, started.text
            sweep_id = started.json()["data"]["sweep_id"]
            for name in chooser.sample(sorted(faults), FAULTS_PER_ROUND):
                time.sleep(chooser.uniform(0.5, 2.0))
                faults[name]()
            seen: list[str] = []

            def ended(
                sweep_id: str = sweep_id, seen: list[str] = seen, headers: dict = headers
            ) -> bool:
                answer = requests.get(
                    f"{web.url}/v1/sweeps/{sweep_id}", headers=headers, timeout=10
                )
                if answer.status_code == 200:
                    seen.append(answer.json()["data"]["status"])
                return bool(seen) and seen[-1] not in ("queued", "running")

            wait_until(ended, HEAL_S, interval=1.0, what=f"sweep {sweep_id} to end")
            assert "interrupted" not in seen, seen
    runs, outcomes = _audit(postgres_url)
    with fake_stripe.state.lock:
        by_request = dict(fake_stripe.state.stats.expired_by_request)
    expired_by_stripe = set(by_request)
    recorded = set().union(*outcomes.values()) if outcomes else set()
    assert expired_by_stripe <= recorded, "lost: Stripe expired sessions no run recorded"
    assert outcomes.get("expired", set()) <= expired_by_stripe, "phantom expires"
    assert all(count == 1 for count in by_request.values()), "a session expired twice"
    assert all(run.status not in ("queued", "running", "interrupted") for run in runs), [
        (run.id, run.status) for run in runs
    ]
