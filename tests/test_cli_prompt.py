"""The question before a destructive sweep, asked on a real pseudo-terminal and answered both
ways; and the refusal to sweep without a terminal or ``--yes``."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.fake_stripe.operations import PLATFORM_ACCOUNT_ID

from harness import COMMAND, expires_seen, sweeper_env
from helpers import LIVE_KEY

CTRL_C = "\x03"


def _waiting(process: subprocess.Popen) -> bool:
    """The process sleeps (in a read, or on Stripe): a person's keystroke finds it there. A
    signal sent while it is still between printing the prompt and reading would be handled
    before the read starts, and the read would then wait for ever."""
    try:
        stat = open(f"/proc/{process.pid}/stat").read()  # noqa: SIM115
    except OSError:
        return True  # gone already: nothing to wait for
    return stat.rsplit(")", 1)[1].split()[0] == "S"


@pytest.fixture
def env(tmp_path: Path, fake_stripe: FakeStripeServer) -> dict[str, str]:
    return sweeper_env(tmp_path, fake_stripe.url, COLUMNS="100")


def _on_a_terminal(
    env: dict[str, str],
    answer: str | None,
    *args: str,
    when: Callable[[bytes], bool] = lambda screen: b"[y/N]" in screen,
) -> tuple[int, str]:
    """Run ``sweep`` with a pty as its terminal; type ``answer`` once ``when(screen)`` holds (Ctrl-C
    is SIGINT, as the terminal sends it)."""
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
    screen, answered, typed_at = b"", False, 0.0
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                screen += os.read(controller, 4096)
            except OSError:
                break
        if answer is not None and not answered and when(screen) and _waiting(process):
            if answer == CTRL_C:  # what the terminal sends its foreground process on Ctrl-C
                process.send_signal(signal.SIGINT)
            else:
                os.write(controller, answer.encode() + b"\n")
            answered, typed_at = True, time.monotonic()
    process.wait(timeout=30)
    os.close(controller)
    if answer == CTRL_C:
        assert time.monotonic() - typed_at < 2.5, "Ctrl-C took more than 2 s to take effect"
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


def test_ctrl_c_at_the_prompt_exits_130_and_expires_nothing(env, fake_stripe):
    fake_stripe.state.seed(open_=6)
    code, screen = _on_a_terminal(env, CTRL_C)
    assert code == 130 and "stopping" in screen and "Aborted!" not in screen
    assert fake_stripe.state.snapshot()["open_total"] == 6


def test_ctrl_c_while_listing_exits_130(env, fake_stripe):
    fake_stripe.state.seed(open_=6)
    fake_stripe.state.faults.update({"latency_ms": 3000})  # the first page takes 3 s
    listing = lambda screen: fake_stripe.state.snapshot()["requests"].get("list", 0) > 0  # noqa: E731
    code, screen = _on_a_terminal(env, CTRL_C, "--yes", when=listing)
    assert code == 130 and "stopping" in screen
    assert fake_stripe.state.snapshot()["open_total"] == 6


def _live(env: dict[str, str]) -> dict[str, str]:
    return {**env, "STRIPE_API_KEY": LIVE_KEY, "SWEEPER_ALLOW_LIVE_MODE": "true"}


def _typed_prompt(screen: bytes) -> bool:
    return b"Type the account id" in screen


def test_live_mode_asks_for_the_account_id_and_a_plain_yes_expires_nothing(env, fake_stripe):
    fake_stripe.state.seed(open_=3, livemode=True)
    code, screen = _on_a_terminal(_live(env), "y", when=_typed_prompt)
    assert "[y/N]" not in screen and "LIVE mode" in screen
    assert code == 1 and "nothing was expired" in screen
    assert fake_stripe.state.snapshot()["open_total"] == 3


def test_live_mode_expires_once_the_account_id_is_typed(env, fake_stripe):
    fake_stripe.state.seed(open_=3, livemode=True)
    code, screen = _on_a_terminal(_live(env), PLATFORM_ACCOUNT_ID, when=_typed_prompt)
    assert f"({PLATFORM_ACCOUNT_ID})" in screen
    assert code == 0, screen
    assert fake_stripe.state.snapshot()["open_total"] == 0


def test_ctrl_c_while_expiring_names_the_sweep_and_what_is_in_flight(env, fake_stripe):
    fake_stripe.state.seed(open_=400)
    fake_stripe.state.faults.update({"latency_ms": 300})
    expiring = lambda screen: expires_seen(fake_stripe) >= 20  # noqa: E731
    code, screen = _on_a_terminal(env, CTRL_C, "--yes", when=expiring)
    assert code == 130, screen
    stopping = re.search(r"stopping: (\d+) in flight, then sweep ([0-9a-f]{32})", screen)
    assert stopping is not None, screen
    assert f"sweep {stopping.group(2)}" in screen.split("interrupted:")[-1]
    assert 0 < fake_stripe.state.snapshot()["open_total"] < 400


def test_a_fleet_is_counted_account_by_account_and_asked_about_once(env, fake_stripe):
    accounts = fake_stripe.state.connect_accounts(3, open_=4)
    named = [arg for account in accounts for arg in ("--account", account)]
    code, screen = _on_a_terminal(env, "n", *named, "--account", "acct_1NotConnected")
    flat = " ".join(screen.split())
    assert "found 12 open Checkout Sessions in 3 accounts (1 could not be read" in flat, screen
    assert code == 1 and fake_stripe.state.snapshot()["open_total"] == 12
    code, screen = _on_a_terminal(env, "n", "--all-accounts")
    assert code == 1 and "Sweep all 3 accounts?" in screen, screen
    assert "found     12 open Checkout Sessions in 3 accounts" in screen
    assert all(f"{account}  4 open" in screen for account in accounts)
    flat = " ".join(screen.split())  # the terminal wraps long lines
    assert "Each expiry sends checkout.session.expired (12 events) to no webhook endpoint" in flat
    assert fake_stripe.state.snapshot()["open_total"] == 12
    code, screen = _on_a_terminal(env, "y", "--all-accounts")
    assert code == 0 and fake_stripe.state.snapshot()["open_total"] == 0, screen


def test_a_fleet_with_a_live_key_is_refused_unless_allowed(env, fake_stripe):
    fake_stripe.state.connect_accounts(2, open_=3)
    live = {**env, "STRIPE_API_KEY": LIVE_KEY}
    result = subprocess.run(
        [*COMMAND, "sweep", "--all-accounts", "--yes"],
        env=live,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "SWEEPER_ALLOW_LIVE_MODE" in result.stderr


def test_the_question_says_what_the_expiries_set_off(env, fake_stripe):
    from checkout_sweeper.fake_stripe.webhooks import new_endpoint

    fake_stripe.state.seed(open_=7, recovery=2)
    hook = new_endpoint(False, {"url": "https://shop.example/hooks/stripe"})
    fake_stripe.state.webhook_endpoints[(False, "")] = [hook]
    code, screen = _on_a_terminal(env, "n")
    flat = " ".join(screen.split())
    assert "checkout.session.expired (7 events) to https://shop.example/hooks/stripe" in flat
    assert "2 of the sessions have recovery enabled" in flat
    assert code == 1 and fake_stripe.state.snapshot()["open_total"] == 7
