"""The question before a destructive sweep, asked on a real pseudo-terminal and answered both
ways; and the refusal to sweep without a terminal or ``--yes``."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from harness import COMMAND, sweeper_env
from helpers import LIVE_KEY


@pytest.fixture
def env(tmp_path, fake_stripe) -> dict[str, str]:
    return sweeper_env(tmp_path, fake_stripe.url, COLUMNS="100")


def _on_a_terminal(env: dict[str, str], answer: str | None, *args: str) -> tuple[int, str]:
    """Run ``sweep`` with a pty as its terminal; type ``answer`` when it asks."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*COMMAND, "sweep", *args],
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
    )
    os.close(terminal)
    screen, answered = b"", False
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                screen += os.read(controller, 4096)
            except OSError:
                break
        if answer is not None and not answered and b"[y/N]" in screen:
            os.write(controller, answer.encode() + b"\n")
            answered = True
    process.wait(timeout=30)
    os.close(controller)
    return process.returncode, screen.decode(errors="replace")


def test_answered_no_expires_nothing(env, fake_stripe):
    fake_stripe.state.seed(open_=12)
    code, screen = _on_a_terminal(env, "n")
    assert "found     12 open Checkout Sessions" in screen and "(test mode)" in screen
    assert "test:acct_" in screen and "Expire all 12?" in screen
    assert code == 1 and "nothing was expired" in screen
    assert fake_stripe.state.snapshot()["open_total"] == 12


def test_answered_yes_expires_them_all(env, fake_stripe):
    fake_stripe.state.seed(open_=12)
    code, screen = _on_a_terminal(env, "y")
    assert code == 0, screen
    assert fake_stripe.state.snapshot()["open_total"] == 0 and "expired" in screen


def test_yes_skips_the_question_and_a_live_key_is_shown_as_live(env, fake_stripe):
    fake_stripe.state.seed(open_=3, livemode=True)
    live = {**env, "STRIPE_API_KEY": LIVE_KEY, "SWEEPER_ALLOW_LIVE_MODE": "true"}
    code, screen = _on_a_terminal(live, None, "--yes")
    assert code == 0 and "LIVE" in screen and "[y/N]" not in screen


def test_without_a_terminal_or_yes_it_refuses_and_expires_nothing(env, fake_stripe):
    fake_stripe.state.seed(open_=5)
    result = subprocess.run(
        [*COMMAND, "sweep"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--yes" in result.stderr
    assert fake_stripe.state.snapshot()["open_total"] == 5
    assert fake_stripe.state.snapshot()["requests_total"] == 0


def test_a_dry_run_never_asks_and_reads_with_a_live_key(env, fake_stripe):
    fake_stripe.state.seed(open_=4, livemode=True)
    code, screen = _on_a_terminal({**env, "STRIPE_API_KEY": LIVE_KEY}, None, "--dry-run")
    assert code == 0 and "[y/N]" not in screen and "would expire" in screen
    assert fake_stripe.state.snapshot()["open_total"] == 4
