"""The expire pool: how each Stripe answer becomes an outcome, idempotency, and bounds."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from checkout_sweeper.engine.expirer import idempotency_key
from checkout_sweeper.engine.gateway import SessionPage
from checkout_sweeper.engine.sweeper import SessionOutcome, Sweeper, SweepOptions
from checkout_sweeper.errors import (
    FatalStripeError,
    RetryableError,
    SessionRejected,
    SweepAborted,
    SweepInterrupted,
)

from memory_gateway import INSTANT, MemoryGateway, sweep_in_memory


def test_a_session_paid_before_its_expire_is_already_closed_not_failed():
    gateway = MemoryGateway(open_=3)
    first = gateway.open_ids()[0]

    def pay_first(page: SessionPage) -> None:
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

    def pay(page: SessionPage) -> None:  # listed as open, paid by the time Stripe answers
        gateway.status[closed] = "complete"

    gateway.after_list = pay
    result, outcomes = sweep_in_memory(gateway)
    by_id = {o.session_id: o for o in outcomes}
    assert by_id[closed].outcome == "already_closed" and by_id[closed].error == "complete"
    assert by_id[still_open].outcome == "failed" and "not active" in str(by_id[still_open].error)
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


def test_no_more_expires_in_flight_than_the_concurrency_ceiling():
    gateway = MemoryGateway(open_=60)
    in_flight, most = [0], [0]
    lock = threading.Lock()
    original = gateway.expire

    def slow_expire(session_id: str, idempotency_key: str) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.005)
        try:
            original(session_id, idempotency_key)
        finally:
            with lock:
                in_flight[0] -= 1

    gateway.expire = slow_expire  # type: ignore[method-assign]
    result, _ = sweep_in_memory(gateway, concurrency=3)
    assert result.expired_count == 60 and most[0] == 3


def test_an_expire_whose_answer_is_lost_as_the_sweep_stops_is_recorded_unknown():
    """Stripe acted, the answer was lost, and the stop came before the retry: the session
    still gets a row (unknown), so every session Stripe expired is on record."""
    gateway = MemoryGateway(open_=20)
    target = gateway.open_ids()[3]
    gateway.lose_answer(target)
    original = gateway.expire
    outcomes: list[SessionOutcome] = []
    holder: dict[str, Sweeper] = {}

    def expire(session_id: str, idempotency_key: str) -> None:
        if session_id == target:
            holder["sweeper"].abort(SweepInterrupted("the server is stopping"))
        original(session_id, idempotency_key)

    gateway.expire = expire  # type: ignore[method-assign]
    sweeper = Sweeper(
        gateway,
        SweepOptions(**{**INSTANT, "concurrency": 1}),
        on_outcome=outcomes.append,
        sleep=lambda seconds: None,
    )
    holder["sweeper"] = sweeper
    with pytest.raises(SweepInterrupted) as stopped:
        sweeper.run()
    assert [(o.session_id, o.outcome) for o in outcomes if o.outcome == "unknown"] == [
        (target, "unknown")
    ]
    expired_at_stripe = {s for s, status in gateway.status.items() if status == "expired"}
    assert {o.session_id for o in outcomes} == expired_at_stripe
    assert stopped.value.result is not None and stopped.value.result.unknown_count == 1


def test_a_404_on_expire_is_a_failure_naming_the_key_or_account():
    gateway = MemoryGateway(open_=3)
    gone = gateway.open_ids()[1]
    gateway.fail_expire(gone, SessionRejected("Stripe 404 error: No such checkout.session", 404))
    result, _ = sweep_in_memory(gateway)
    assert result.already_closed_count == 0 and [f["id"] for f in result.failed] == [gone]
    reason = str(result.failed[0]["error"])
    assert "test:memory" in reason and "key" in reason and "account" in reason


def test_a_session_that_lapsed_while_its_expire_waited_on_429s_is_not_claimed():
    gateway = MemoryGateway(open_=4)
    lapsing = gateway.open_ids()[2]
    gateway.fail_expire(lapsing, *[RetryableError("Stripe 429", rate_limited=True)] * 2)
    gateway.fail_expire(gateway.open_ids()[0], RetryableError("Stripe 429", lock_contention=True))

    def lapse(page: SessionPage) -> None:  # its expires_at passes while the 429s go on
        gateway.status[lapsing] = "expired"

    gateway.after_list = lapse
    result, outcomes = sweep_in_memory(gateway)
    by_id = {o.session_id: o for o in outcomes}
    assert (by_id[lapsing].outcome, by_id[lapsing].error) == ("already_closed", "expired")
    assert by_id[lapsing].attempts == 3
    assert result.expired_count == 3 and result.already_closed_count == 1


def test_a_session_listed_again_after_it_was_expired_is_counted_once():
    gateway = MemoryGateway(open_=5)
    first_page: list[dict[str, Any]] = []

    def replay_a_stale_page(page: SessionPage) -> None:
        if not first_page:
            first_page.extend(page.sessions)
        elif gateway.calls["list"] == 2:  # a stale copy of the first page, after it was expired
            page.sessions[:0] = first_page

    gateway.after_list = replay_a_stale_page
    result, outcomes = sweep_in_memory(gateway)
    assert result.expired_count == 5 and len(outcomes) == 5
