"""How tests wait, build a command's environment and start the project's processes: one way
each, so no test sleeps in place of a condition or hand-writes a polling loop."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.fake_stripe.process import free_port

from helpers import JWT_SECRET, TEST_KEY

T = TypeVar("T")
COMMAND = [sys.executable, "-m", "checkout_sweeper"]


def wait_until(
    condition: Callable[[], T],
    timeout: float = 30.0,
    *,
    what: str = "the condition",
    interval: float = 0.02,
    alive: subprocess.Popen | None = None,
) -> T:
    """``condition()``'s first truthy value; the test fails naming ``what`` after ``timeout``
    seconds, or at once when ``alive`` (a process the condition depends on) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            pytest.fail(f"waiting for {what}: the process exited with {alive.returncode}")
        if time.monotonic() >= deadline:
            pytest.fail(f"waited {timeout:g} s for {what}")
        time.sleep(interval)


def sweeper_env(folder: Path, stripe_url: str | None = None, **overrides: str | None) -> dict:
    """The whole environment of a command or server under test: this machine's, plus a test
    key, the fake Stripe, the JWT secret and a data folder of its own. An override of None
    removes the variable."""
    env: dict[str, str | None] = {
        **os.environ,
        "STRIPE_API_KEY": TEST_KEY,
        "STRIPE_API_BASE": stripe_url,
        "JWT_SECRET": JWT_SECRET,
        "SWEEPER_INSTANCE_PATH": str(folder),
        "SWEEPER_MAX_RPS": "200",
        **overrides,
    }
    return {name: value for name, value in env.items() if value is not None}


def queued_env(
    folder: Path, stripe_url: str, postgres_url: str, redis_url: str, **overrides: str | None
) -> dict:
    """Production's shape: PostgreSQL for the runs, Redis for the queue and the quota."""
    return sweeper_env(
        folder,
        stripe_url,
        DATABASE_URL=postgres_url,
        SWEEPER_QUEUE_URL=redis_url,
        RATELIMIT_STORAGE_URI=redis_url,
        **overrides,
    )


def expires_seen(fake_stripe: FakeStripeServer) -> int:
    return int(fake_stripe.state.snapshot()["requests"].get("expire", 0))


def wait_for_expires(
    fake_stripe: FakeStripeServer, count: int, timeout: float = 30.0, **kwargs: Any
) -> None:
    """Until the fake has seen ``count`` expire requests: a sweep is under way."""
    wait_until(
        lambda: expires_seen(fake_stripe) >= count,
        timeout,
        what=f"{count} expire requests at the fake Stripe",
        **kwargs,
    )


def answers_health(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class Served:
    """A ``serve`` process that answers ``/healthz``; its output is in ``log``."""

    url: str
    port: int
    process: subprocess.Popen
    log: Path


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path, *args: str) -> Iterator[Served]:
    """``checkout-sweeper serve`` on a free port, waited for until it answers, stopped (SIGTERM,
    then SIGKILL) when the block ends."""
    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [*COMMAND, "serve", "--port", str(port), *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_health(url), 60, what="serve to answer /healthz", alive=process)
        yield Served(url, port, process, log)
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM, and SIGKILL when it has not ended after ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def working(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """A ``checkout-sweeper worker`` process, stopped (SIGTERM, then SIGKILL) at the end."""
    with log.open("w") as output:
        process = subprocess.Popen(
            [*COMMAND, "worker", *args], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    wait_until(lambda: "worker started" in log.read_text(), 60, what="the worker", alive=process)
    try:
        yield process
    finally:
        stop(process)


def sweep_when_ended(url: str, sweep_id: str, token: str, timeout: float = 90.0) -> dict:
    """``/v1/sweeps/{id}`` polled (under the per-user read limit) until the sweep is neither
    queued nor running; its last answer."""
    seen: list[dict] = []

    def ended() -> bool:
        answer = requests.get(
            f"{url}/v1/sweeps/{sweep_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        seen.append(answer.json()["data"])
        return seen[-1]["status"] not in ("queued", "running")

    wait_until(ended, timeout, interval=0.6, what="the sweep to end")
    return seen[-1]
