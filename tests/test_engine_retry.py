"""The retry policy and the paced calls: what is retried, how long it waits, what it costs."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from checkout_sweeper.engine.pacing import AdaptiveTokenBucket
from checkout_sweeper.engine.retry import PacedCalls, RetryPolicy
from checkout_sweeper.engine.stop import StopSignal
from checkout_sweeper.engine.tally import Tally
from checkout_sweeper.errors import (
    LeaseLost,
    RateLimitStorm,
    RetryableError,
    SessionRejected,
    SweepStopped,
)

from helpers import FakeClock


def test_backoff_is_full_jitter_under_a_doubling_ceiling():
    policy = RetryPolicy(max_attempts=6, base_s=0.25, cap_s=8.0)
    rng = random.Random(7)
    problem = RetryableError("500")
    for attempt, ceiling in [(1, 0.25), (3, 1.0), (6, 8.0), (9, 8.0)]:
        waits = [policy.backoff_s(attempt, problem, rng) for _ in range(500)]
        assert 0 <= min(waits) < ceiling * 0.05 and ceiling * 0.95 < max(waits) <= ceiling


def test_backoff_honours_retry_after_up_to_the_cap():
    policy = RetryPolicy(base_s=0.25, cap_s=8.0)
    rng = random.Random(1)
    assert policy.backoff_s(1, RetryableError("429", retry_after_s=3), rng) >= 3
    assert policy.backoff_s(1, RetryableError("429", retry_after_s=600), rng) <= 8.0


def _calls(max_attempts: int = 4) -> tuple[PacedCalls, Tally, StopSignal, list[float]]:
    clock = FakeClock()
    slept: list[float] = []
    bucket = AdaptiveTokenBucket(20, clock=clock, sleep=clock.sleep)
    tally, stop = Tally("s", False), StopSignal()
    policy = RetryPolicy(max_attempts=max_attempts, base_s=0.25, cap_s=8.0)
    return PacedCalls(bucket, policy, tally, stop, sleep=slept.append), tally, stop, slept


def test_a_429_is_retried_counted_and_slows_the_bucket():
    calls, tally, _, slept = _calls()
    answers: Iterator[RetryableError | str] = iter([RetryableError("429", rate_limited=True), "ok"])

    def request() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert calls.call(request) == "ok"
    assert tally.progress.requests == 2 and tally.progress.rate_limited == 1
    assert calls.bucket.rate == pytest.approx(17) and slept == []  # the bucket paces it


def test_retries_stop_after_the_last_attempt_with_the_last_error():
    calls, tally, _, slept = _calls(max_attempts=3)

    def request() -> None:
        raise RetryableError("Stripe 503 error")

    with pytest.raises(RetryableError, match="503"):
        calls.call(request)
    assert tally.progress.requests == 3 and len(slept) == 2


def test_errors_that_are_not_retryable_are_raised_at_once():
    calls, tally, _, slept = _calls()

    def request() -> None:
        raise SessionRejected("No such checkout.session", 404)

    with pytest.raises(SessionRejected):
        calls.call(request)
    assert tally.progress.requests == 1 and slept == []


def test_a_sweep_stopped_during_a_request_does_not_retry_it():
    calls, tally, stop, slept = _calls()

    def request() -> None:
        stop.interrupt()
        raise RetryableError("Stripe 500 error")

    with pytest.raises(RetryableError):
        calls.call(request)
    assert tally.progress.requests == 1 and slept == []


def test_no_request_starts_once_the_sweep_stopped():
    calls, tally, stop, _ = _calls()
    stop.interrupt()
    with pytest.raises(SweepStopped):
        calls.call(lambda: "never sent")
    assert tally.progress.requests == 0


def test_no_request_starts_after_the_deadline():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(1, clock=clock, sleep=clock.sleep)  # one a second
    tally, stop = Tally("s", False), StopSignal(clock=clock)
    stop.set_deadline(2.5, LeaseLost("lease could not be renewed"))
    calls = PacedCalls(bucket, RetryPolicy(), tally, stop, sleep=clock.sleep)
    sent = []
    with pytest.raises(SweepStopped):
        for _ in range(10):
            calls.call(lambda: sent.append(clock.now))
    assert len(sent) == 3 and max(sent) < 2.5  # one a second, none after the deadline
    assert isinstance(stop.reason, LeaseLost)


def test_429s_spend_no_attempt_and_no_backoff_the_bucket_paces_them():
    calls, tally, _, slept = _calls(max_attempts=2)
    answers = iter([RetryableError("429", rate_limited=True)] * 5 + ["ok"])

    def request() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert calls.call(request) == "ok"  # five 429s, though two attempts are allowed
    assert tally.progress.rate_limited == 5 and slept == []


def test_a_storm_longer_than_the_patience_stops_the_sweep_with_a_message():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, clock=clock, sleep=clock.sleep)
    tally, stop = Tally("s", False), StopSignal()
    policy = RetryPolicy(storm_patience_s=5.0)
    calls = PacedCalls(bucket, policy, tally, stop, sleep=clock.sleep)

    def refused() -> str:
        clock.now += 0.25  # Stripe answers a quarter of a second later: 429
        raise RetryableError("429", rate_limited=True)

    for _ in range(3):  # a second of answers first, so a storm can be told from a start
        bucket.answered()
        clock.now += 0.4
    with pytest.raises(RetryableError):
        calls.call(refused)
    assert isinstance(stop.reason, RateLimitStorm) and stop.stopped
    assert "refused every request" in str(stop.reason) and "5 s" in str(stop.reason)
    assert 5 < bucket.storm_s() < 7
