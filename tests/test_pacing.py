"""The token bucket: even spacing at the budget, a cut on 429, a slow climb back."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque

import pytest

from checkout_sweeper.engine.neighbours import SETTLE_SHARE
from checkout_sweeper.engine.pacing import (
    DECREASE_WHILE_HOLDING,
    HOLD_429_SHARE,
    WINDOW_S,
    AdaptiveTokenBucket,
    SpacedSlots,
)
from checkout_sweeper.fake_stripe.limiter import SlidingWindow

from helpers import FakeClock

Answers = deque[tuple[float, bool]]  # Stripe's answers on their way: (due at, let through)


def test_bucket_spaces_requests_at_its_rate():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        bucket.acquire()
    assert 99 / 20 <= clock.now <= 99 / 20 * WINDOW_S


class LateWaker(FakeClock):
    """Every seventh sleeper wakes 30 ms late, as a thread does while another holds the
    interpreter."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps = 0

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        super().sleep(seconds + (0.03 if self.sleeps % 7 == 0 else 0.0))


@pytest.mark.parametrize("rate", [20.0, 24.6])
def test_no_one_second_window_gets_more_than_the_rate_even_when_threads_wake_late(rate):
    clock = LateWaker()
    bucket = AdaptiveTokenBucket(rate, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(300):
        bucket.acquire()
        times.append(clock.now)
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= math.ceil(rate)  # what Stripe's one-second window admits
    assert len(times) / (times[-1] - times[0]) > 0.95 * rate


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
    assert many.rate < 40 * 0.7
    assert many.learned_limit is not None and many.learned_limit < 40 * 0.75


def test_a_stray_429_while_holding_steps_the_learned_limit_down_gently():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(25, clock=clock, sleep=clock.sleep)
    bucket.penalize()
    clock.now += 10
    bucket.acquire()  # holding just under 25
    bucket.penalize()  # one request arrived a little early
    assert bucket.learned_limit == pytest.approx(25 * HOLD_429_SHARE)
    assert bucket.rate == pytest.approx(25 * SETTLE_SHARE * DECREASE_WHILE_HOLDING)
    clock.now += 10
    bucket.acquire()
    assert bucket.rate == pytest.approx(25 * HOLD_429_SHARE * SETTLE_SHARE)


def _answer_due(bucket: AdaptiveTokenBucket, pending: Answers, now: float) -> None:
    """Stripe's answers due by ``now`` reach the bucket: let through, or a 429."""
    while pending and pending[0][0] <= now:
        _, admitted = pending.popleft()
        bucket.answered() if admitted else bucket.penalize()


def _drive(bucket: AdaptiveTokenBucket, clock: FakeClock, limit: float, seconds: float) -> int:
    """Send as fast as the bucket allows for ``seconds`` to a Stripe that admits ``limit`` in
    any one-second window and answers 250 ms later. Returns how many it refused."""
    refused, _ = _drive_counting(bucket, clock, limit, seconds)
    return refused


def _drive_counting(
    bucket: AdaptiveTokenBucket, clock: FakeClock, limit: float, seconds: float
) -> tuple[int, int]:
    """``_drive``, returning how many were refused and how many got through."""
    window, refused, pending = SlidingWindow(), 0, Answers()
    end, sent = clock.now + seconds, 0
    while clock.now < end:
        _answer_due(bucket, pending, clock.now)
        bucket.acquire()
        admitted = window.fits("account", limit, clock.now)
        if admitted:
            window.take("account", limit, clock.now)
        refused += not admitted
        sent += 1
        pending.append((clock.now + 0.25, admitted))
    return refused, sent - refused


def test_when_another_client_takes_part_of_the_budget_the_rate_follows_it_down():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(25, account_limit=25, clock=clock, sleep=clock.sleep)
    assert _drive(bucket, clock, 25, 20) <= 1
    assert 24 < bucket.rate <= 25
    assert _drive(bucket, clock, 15, 10) <= 10  # the app now spends 10 of the 25
    assert bucket.rate <= 15 and bucket.shared()
    # a margin below what is left (room for the app's bursts), and few probes into it
    refused, through = _drive_counting(bucket, clock, 15, 60)
    assert refused <= 3
    assert 0.85 * 15 <= through / 60 <= 0.92 * 15


def test_when_the_other_client_goes_quiet_the_sweep_takes_the_room_back():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(25, account_limit=25, clock=clock, sleep=clock.sleep)
    _drive(bucket, clock, 15, 30)  # the app spends 10 of the 25
    assert bucket.rate < 15
    assert _drive(bucket, clock, 25, 60) <= 3  # then it stops
    assert bucket.rate > 0.9 * 25


def test_a_budget_far_over_the_limit_comes_down_to_what_gets_through():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(60, clock=clock, sleep=clock.sleep)
    # the first second cannot be helped (the first 429 comes back after 250 ms, and what
    # gets through is a limit only over a full second); after it, one cut to what got
    # through, not five cuts of 15% and their 429s
    assert _drive(bucket, clock, 25, 3) <= 30
    assert 20 < bucket.rate <= 25
    # then a few 429s while the climb finds 25 from just over it, and one per probe
    assert _drive(bucket, clock, 25, 60) <= 5
    assert 24 < bucket.rate <= 25


def _answers(
    bucket: AdaptiveTokenBucket, clock: FakeClock, count: int, seconds: float = 1.0
) -> None:
    """``count`` answers that got through, evenly over the next ``seconds``."""
    for _ in range(count):
        clock.now += seconds / count
        bucket.answered()


def _send(bucket: AdaptiveTokenBucket, clock: FakeClock, per_second: float, seconds: float) -> None:
    """Requests at ``per_second`` (a full pool: each thread waits on Stripe, not on the
    bucket), each let through."""
    end = clock.now + seconds
    while clock.now < end:
        bucket.acquire()
        bucket.answered()
        clock.now += 1 / per_second


def test_few_answers_after_a_cut_are_not_taken_for_the_limit():
    """After the first 429s the threads back off, so the next second sends (and Stripe lets
    through) only a few: that is not a limit, and the next 429 must not be learned as one."""
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(100, clock=clock, sleep=clock.sleep)
    _drive(bucket, clock, 30, 3)  # 100 a second against 30: learned at once
    assert bucket.learned_limit == pytest.approx(30, rel=0.1)
    clock.now += 1.5  # the threads were backing off
    _send(bucket, clock, 12, 1.0)  # a quiet second: a few sent, all let through
    bucket.penalize()  # one 429
    assert bucket.learned_limit is not None
    assert bucket.learned_limit > 25  # not the 12 of the quiet second


def test_429s_already_in_flight_do_not_cut_below_what_got_through():
    """Once what got through is learned, the 429s of requests sent before that moment still
    come back; they say nothing new and must not cut 3% each."""
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(60, clock=clock, sleep=clock.sleep)
    _send(bucket, clock, 30, 1.1)
    for _ in range(3):
        bucket.penalize()
    learned = bucket.learned_limit
    assert learned is not None and learned < 30  # far over: learned from what got through
    for _ in range(5):
        bucket.penalize()
    assert bucket.learned_limit == learned


def test_the_first_answers_of_a_sweep_are_not_taken_for_the_limit():
    """At the start the pool is still filling (the first page is loading), so few answers
    have come back when a burst of requests draws its first 429s: that trickle is not a limit."""
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(60, clock=clock, sleep=clock.sleep)
    for _ in range(8):
        bucket.acquire()
    clock.now = 0.25
    _answers(bucket, clock, 7, seconds=0.36)
    for _ in range(4):
        bucket.penalize()  # a token bucket's burst allowance ran out
    assert bucket.learned_limit is not None
    assert bucket.learned_limit > 0.8 * 60  # cut gently, not down to 7 in 0.36 s (19 a second)


def test_a_second_with_only_a_few_429s_is_not_far_over():
    """Answers come back in bunches (Stripe slowed down a moment): in a second in which 30
    were sent and only 15 came back, with a few 429s, the limit is the share let through of
    what was sent (15 of 19 answers, of 30), not the 15."""
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(40, clock=clock, sleep=clock.sleep)
    _send(bucket, clock, 30, 1.5)
    for sent in range(30):
        bucket.acquire()
        if sent % 2:
            bucket.answered()  # half of them; the rest still in flight
        clock.now += 1 / 30
    for _ in range(4):
        bucket.penalize()
    assert bucket.learned_limit is not None and bucket.learned_limit > 20


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


def _send_from_threads(slots: SpacedSlots, threads: int, each: int) -> list[float]:
    """When each request went, ``threads`` threads sending ``each`` through ``slots``."""
    sent: list[float] = []

    def send() -> None:
        for _ in range(each):
            slots.acquire()
            sent.append(time.monotonic())

    senders = [threading.Thread(target=send) for _ in range(threads)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=30)
    return sent


def test_threads_share_one_budget():
    """Four threads of 25 requests at 200 a second take as long as 100 requests would."""
    sent = _send_from_threads(AdaptiveTokenBucket(200, burst=1), threads=4, each=25)
    assert len(sent) == 100
    assert max(sent) - min(sent) >= 99 / 200 * 0.99  # one budget, not one per thread


def test_a_rate_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match="positive"):
        AdaptiveTokenBucket(0)


def _storm(bucket: AdaptiveTokenBucket, clock: FakeClock, seconds: float) -> None:
    """Every request refused for ``seconds``, answered 250 ms after it was sent."""
    end = clock.now + seconds
    while clock.now < end:
        bucket.acquire()
        clock.now += 0.25
        bucket.penalize()


def test_a_storm_of_429s_teaches_nothing_and_the_pace_comes_back_within_seconds():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(25, account_limit=25, clock=clock, sleep=clock.sleep)
    _drive(bucket, clock, 25, 30)
    before, learned = bucket.rate, bucket.learned_limit
    _storm(bucket, clock, 15)
    assert bucket.rate == bucket.min_rate and 14 < bucket.storm_s() <= 16
    assert bucket.learned_limit == learned  # an outage is not a limit
    _send(bucket, clock, 25, 0.1)  # the first answers that get through
    assert bucket.storm_s() == 0
    _drive(bucket, clock, 25, 3)
    assert bucket.rate >= 0.9 * before  # a climb of seconds, not a crawl from the floor


def test_a_storm_before_any_limit_was_met_climbs_back_to_the_budget():
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, account_limit=25, clock=clock, sleep=clock.sleep)
    _send(bucket, clock, 20, 2)
    _storm(bucket, clock, 5)
    assert bucket.learned_limit is None and bucket.rate == bucket.min_rate
    _send(bucket, clock, 20, 4)  # a climb of CLIMB_S (3 s) from the first answer through
    assert bucket.rate == pytest.approx(20, abs=0.01)


def _share_with_app(
    bucket: AdaptiveTokenBucket, clock: FakeClock, app: list[float]
) -> tuple[float, float]:
    """The sweep sends as fast as the bucket allows, the app at the moments in ``app``, both
    to a Stripe that admits 25 in any one-second window and answers 250 ms later. Returns the
    share of the app's requests refused (the sweep never sees those) and the sweep's requests
    let through a second."""
    window, pending, arrivals, refused, through = SlidingWindow(), Answers(), deque(app), 0, 0
    while clock.now < app[-1]:
        _answer_due(bucket, pending, clock.now)
        bucket.acquire()
        while arrivals and arrivals[0] <= clock.now:
            at = arrivals.popleft()
            if window.fits("account", 25, at):
                window.take("account", 25, at)
            else:
                refused += 1
        admitted = window.fits("account", 25, clock.now)
        if admitted:
            window.take("account", 25, clock.now)
        through += admitted
        pending.append((clock.now + 0.25, admitted))
    return refused / len(app), through / app[-1]


def _neighbour_run(bursty: bool) -> tuple[float, float]:
    clock = FakeClock()
    bucket = AdaptiveTokenBucket(20, account_limit=25, clock=clock, sleep=clock.sleep, jitter=0.5)
    bucket._random = random.Random(3)  # the late sends, repeatable
    draw, moments = random.Random(7), [0.0]
    while moments[-1] < 240:
        moments.append(moments[-1] + (draw.expovariate(6) if bursty else 1 / 6))
    return _share_with_app(bucket, clock, moments[1:])


def test_a_steady_app_keeps_its_share_and_the_sweep_most_of_the_rest():
    refused, rate = _neighbour_run(bursty=False)
    assert refused <= 0.015 and rate >= 0.85 * 19


def test_an_app_with_bursts_gets_a_wider_margin_than_a_steady_one():
    bursty_refused, bursty_rate = _neighbour_run(bursty=True)
    _, steady_rate = _neighbour_run(bursty=False)
    assert bursty_rate < steady_rate and bursty_refused <= 0.02


def _busiest_second(bucket: AdaptiveTokenBucket, clock: FakeClock, sends: int) -> int:
    times = []
    for _ in range(sends):
        bucket.acquire()
        times.append(clock.now)
    return max(sum(1 for t in times if start <= t < start + 1) for start in times)


def _jittered(rate: float, clock: FakeClock) -> AdaptiveTokenBucket:
    """A sweep's bucket (sends late by up to half an interval) on a 25 req/s account."""
    bucket = AdaptiveTokenBucket(rate, account_limit=25, clock=clock, sleep=clock.sleep, jitter=0.5)
    bucket._random = random.Random(5)  # the late sends, repeatable
    return bucket


def test_a_sweep_that_leaves_room_does_not_hold_on_to_its_places_in_the_window():
    clock = FakeClock()
    leaving_room = _jittered(17, clock)
    # some sends land before the sweep's own oldest leaves Stripe's window, so a full second
    # refuses the sweep as often as the app (and the sweep learns of it)
    assert _busiest_second(leaving_room, clock, 300) == 18
    using_it_all = _jittered(24.6, clock)
    assert _busiest_second(using_it_all, clock, 300) <= 25


class RateRises(SpacedSlots):
    """1 request a second (a storm's floor) for half a second, then 50."""

    def __init__(self) -> None:
        super().__init__(1.0, 1, time.monotonic, time.sleep)
        self.rises_at = time.monotonic() + 0.5

    def rate_at(self, now: float) -> float:
        return 1.0 if now < self.rises_at else 50.0


def test_callers_waiting_at_a_low_rate_go_as_soon_as_it_rises():
    slots = RateRises()
    sent = _send_from_threads(slots, threads=8, each=1)
    # not one a second for eight seconds: the slots taken at the low rate are planned again
    assert len(sent) == 8 and max(sent) < slots.rises_at + 0.6
