"""The token bucket: even spacing at the budget, a cut on 429, a slow climb back."""

from __future__ import annotations

import threading

import pytest

from checkout_sweeper.pacing import AdaptiveTokenBucket

from helpers import FakeClock


def test_bucket_spaces_requests_at_its_rate():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        bucket.acquire()
    assert clock.now == pytest.approx(99 / 20)


def test_no_one_second_window_gets_more_than_the_rate_plus_one():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(200):
        bucket.acquire()
        times.append(clock.now)
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= 21


def test_bucket_slows_down_on_429_and_recovers_gradually():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, burst=1, clock=clock, sleep=clock.sleep)
    bucket.penalize()
    assert bucket.rate == pytest.approx(14)
    clock.now += 4
    bucket.acquire()
    assert bucket.rate == pytest.approx(16)  # 0.5 request/s more per second
    clock.now += 60
    bucket.acquire()
    assert bucket.rate == 20


def test_the_rate_never_falls_below_its_floor():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, min_rate=1.0, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        bucket.penalize()
    assert bucket.rate == 1.0


def test_threads_share_one_budget():
    """Four threads asking at the same instant get 100 distinct slots 0.1 s apart."""
    waits: list[float] = []
    bucket = AdaptiveTokenBucket(10, burst=1, clock=lambda: 0.0, sleep=waits.append)

    def take() -> None:
        for _ in range(25):
            bucket.acquire()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(round(w, 6) for w in waits) == [round(i / 10, 6) for i in range(1, 100)]


def test_a_rate_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match="positive"):
        AdaptiveTokenBucket(0)
