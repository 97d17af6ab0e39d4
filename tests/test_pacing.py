"""The token bucket: even spacing at the budget, a cut on 429, a slow climb back."""

from __future__ import annotations

import threading

import pytest

from checkout_sweeper.pacing import SETTLE_SHARE, AdaptiveTokenBucket

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


def test_a_429_cuts_the_rate_and_it_settles_just_under_the_learned_limit():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(40, burst=1, clock=clock, sleep=clock.sleep)
    bucket.penalize()  # at 40
    assert bucket.rate == pytest.approx(34)
    assert bucket.learned_limit == 40
    clock.now += 1.5
    bucket.acquire()
    assert 34 < bucket.rate < 40 * SETTLE_SHARE  # climbing, fast first then slowly
    clock.now += 10
    bucket.acquire()
    assert bucket.rate == pytest.approx(40 * SETTLE_SHARE)  # held just under the limit


def test_a_few_429s_cut_gently_and_many_cut_deeper():
    clock = FakeClock()
    few = AdaptiveTokenBucket(40, clock=clock, sleep=clock.sleep)
    few.penalize()
    few.penalize()  # two answers of one burst
    assert few.rate == pytest.approx(40 * 0.85 * 0.97)
    many = AdaptiveTokenBucket(40, clock=clock, sleep=clock.sleep)
    for _ in range(12):  # twelve requests in flight answer 429 together
        many.penalize()
    assert many.rate < 40 * 0.7 and many.learned_limit < 40 * 0.75


def test_a_second_client_lowers_the_learned_limit():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(25, clock=clock, sleep=clock.sleep)
    bucket.penalize()
    clock.now += 10
    bucket.acquire()  # settled near 24
    bucket.penalize()  # someone else now spends part of the budget
    assert bucket.learned_limit == pytest.approx(25 * SETTLE_SHARE)
    clock.now += 10
    bucket.acquire()
    assert bucket.rate == pytest.approx(25 * SETTLE_SHARE**2)


def test_after_a_quiet_spell_it_probes_above_the_learned_limit_up_to_the_ceiling():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(30, clock=clock, sleep=clock.sleep)
    bucket.penalize()  # a 429 at the ceiling: the limit learned is 30
    clock.now += 3 + 20 + 5
    bucket.acquire()
    assert bucket.rate == 30  # the ceiling caps the probe
    fixed = AdaptiveTokenBucket(60, clock=clock, sleep=clock.sleep)
    clock.now += 1
    fixed.penalize()  # the real limit was met at 60 -> learned 60
    clock.now += 3 + 20 + 2
    fixed.acquire()
    assert fixed.rate > 60 * SETTLE_SHARE


def test_retry_after_delays_the_next_slot():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, burst=1, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.penalize(retry_after_s=2.0)
    bucket.acquire()
    assert clock.now >= 2.0


def test_the_rate_never_falls_below_its_floor():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, min_rate=1.0, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        bucket.penalize()
        clock.now += 1.0  # separate events, each cutting again
        assert bucket.rate >= 1.0
    assert bucket.rate < 1.2


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
