"""Storms of 429s over HTTP: every request refused for a while, as an outage or a client that
takes the whole budget does. The sweep waits them out and finds its pace again, or, answered
within a request, stops after its patience with an answer that says why."""

from __future__ import annotations

import json
import threading
import time

from checkout_sweeper.fake_stripe import FakeStripeServer

from harness import sweeper_env
from helpers import run_command


def _storm(fake_stripe: FakeStripeServer, at_s: float, length_s: float) -> list[threading.Timer]:
    timers = [
        threading.Timer(at_s, fake_stripe.state.faults.update, ({"refuse_rate": 1},)),
        threading.Timer(at_s + length_s, fake_stripe.state.faults.update, ({"refuse_rate": 0},)),
    ]
    for timer in timers:
        timer.start()
    return timers


def test_a_sweep_waits_out_a_storm_and_expires_everything(tmp_path, fake_stripe):
    fake_stripe.state.seed(open_=160)
    fake_stripe.state.faults.update({"latency_ms": 20})
    env = sweeper_env(tmp_path, fake_stripe.url, SWEEPER_MAX_RPS="40")
    timers = _storm(fake_stripe, 1.5, 4.0)
    started = time.monotonic()
    result = run_command(env, "sweep", "--yes", "--json")
    took = time.monotonic() - started
    for timer in timers:
        timer.cancel()
    answer = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert answer["expired_count"] == 160 and answer["failed"] == []
    assert answer["rate_limited"] > 0 and fake_stripe.state.snapshot()["open_total"] == 0
    assert took < 4.0 + 160 / 40 + 4  # the storm, the sweep, and a few seconds to climb back


def test_a_sweep_in_the_request_stops_after_its_patience_and_says_why(start_api, fake_stripe):
    api = start_api(SWEEPER_STORM_PATIENCE="2")
    token = api.token(api.add_user())
    fake_stripe.state.seed(open_=3)
    assert api.sweep(token).status_code == 200  # the account is known from here on
    fake_stripe.state.seed(open_=40)
    fake_stripe.state.faults.update({"refuse_rate": 1})
    started = time.monotonic()
    answer = api.sweep(token)
    assert answer.status_code == 503, answer.text
    assert time.monotonic() - started < 10
    assert "refused every request" in answer.json()["message"]
    assert answer.headers["Retry-After"] == "60"
    assert fake_stripe.state.snapshot()["open_total"] == 40
