"""The expire pool: how each Stripe answer becomes an outcome, idempotency, and bounds."""

from __future__ import annotations

import threading
import time

import pytest

from checkout_sweeper.engine.expirer import idempotency_key
from checkout_sweeper.errors import (
    FatalStripeError,
    RetryableError,
    SessionRejected,
    SweepAborted,
)

from memory_gateway import MemoryGateway, sweep_in_memory


def test_a_session_paid_before_its_expire_is_already_closed_not_failed():
    gateway = MemoryGateway(open_=3)
    first = gateway.open_ids()[0]

    def pay_first(page) -> None:
        gateway.status[first] = "complete"

    gateway.after_list = pay_first
    result, outcomes = sweep_in_memory(gateway)
    closed = [o for o in outcomes if o.outcome == "already_closed"]
    assert [(o.session_id, o.error) for o in closed] == [(first, "complete")]
    assert result.failed == [] and result.succeeded


def test_a_lost_answer_retried_with_the_same_key_counts_as_expired():
    gateway = MemoryGateway(open_=2)
    lost = gateway.open_ids()[0]
    gateway.lose_answer(lost)
    result, outcomes = sweep_in_memory(gateway)
    assert result.expired_count == 2 and result.already_closed_count == 0
    assert {o.session_id: o.attempts for o in outcomes}[lost] == 2
    assert gateway.expire_keys[lost] == {idempotency_key(result.sweep_id, lost)}


def test_an_oddly_worded_400_is_checked_against_the_session_status():
    gateway = MemoryGateway(open_=2)
    closed, still_open = gateway.open_ids()
    for session_id in (closed, still_open):
        gateway.fail_expire(session_id, SessionRejected("Session not active.", 400))

    def pay(page) -> None:  # listed as open, paid by the time Stripe answers
        gateway.status[closed] = "complete"

    gateway.after_list = pay
    result, outcomes = sweep_in_memory(gateway)
    by_id = {o.session_id: o for o in outcomes}
    assert by_id[closed].outcome == "already_closed" and by_id[closed].error == "complete"
    assert by_id[still_open].outcome == "failed" and "not active" in by_id[still_open].error
    assert gateway.calls["retrieve"] == 2 and not result.succeeded


def test_a_session_that_keeps_failing_is_reported_after_every_attempt():
    gateway = MemoryGateway(open_=3)
    stubborn = gateway.open_ids()[1]
    gateway.fail_expire(stubborn, *[RetryableError("Stripe 500 error: boom")] * 10)
    result, outcomes = sweep_in_memory(gateway, max_attempts=4)
    assert result.failed == [{"id": stubborn, "error": "Stripe 500 error: boom"}]
    assert {o.session_id: o.attempts for o in outcomes}[stubborn] == 4
    assert result.remaining_open_count == 1 and not result.succeeded


def test_a_rejected_key_stops_the_sweep_and_keeps_what_was_done():
    gateway = MemoryGateway(open_=40)
    gateway.fail_expire(gateway.open_ids()[5], FatalStripeError("Stripe 401 error: key revoked"))
    with pytest.raises(SweepAborted, match="key revoked"):
        sweep_in_memory(gateway, concurrency=1)
    assert gateway.calls["expire"] < 40  # nothing new is dispatched once the key is refused


def test_no_more_expires_in_flight_than_the_concurrency():
    gateway = MemoryGateway(open_=60)
    in_flight, most = [0], [0]
    lock = threading.Lock()
    original = gateway.expire

    def slow_expire(session_id: str, key: str) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.005)
        try:
            original(session_id, key)
        finally:
            with lock:
                in_flight[0] -= 1

    gateway.expire = slow_expire  # type: ignore[method-assign]
    result, _ = sweep_in_memory(gateway, concurrency=3)
    assert result.expired_count == 60 and most[0] == 3
