"""The pool sizes itself: in flight follows the budget's rate times the latency measured."""

from __future__ import annotations

import threading
import time

import pytest

from checkout_sweeper.engine.elastic import ElasticThreads
from checkout_sweeper.engine.latency import AUTO_CEILING, FLOOR, LatencyEstimate, pool_size
from checkout_sweeper.errors import ConfigError, SessionRejected
from checkout_sweeper.settings import CONCURRENCY

from memory_gateway import MemoryGateway, sweep_in_memory


@pytest.mark.parametrize(
    ("rate", "latency_s", "ceiling", "size"),
    [
        (25, 0.25, AUTO_CEILING, 14),  # the README's latency: about what a fixed 8 gave
        (25, 0.72, AUTO_CEILING, 31),  # 600 ms, 5% five times slower: a mean of 720 ms
        (25, 1.2, AUTO_CEILING, 49),
        (100, 0.3, AUTO_CEILING, 49),  # a live account's limit
        (100, 3.0, AUTO_CEILING, AUTO_CEILING),  # bounded above
        (100, 3.0, 20, 20),  # by SWEEPER_CONCURRENCY when set
        (1, 0.05, AUTO_CEILING, FLOOR + 1),  # a storm's floor: a few in flight still
        (25, 1.0, 2, 2),  # a ceiling under the floor wins
    ],
)
def test_the_size_is_the_rate_times_the_latency_with_headroom_within_bounds(
    rate, latency_s, ceiling, size
):
    assert pool_size(rate, latency_s, ceiling) == size


def test_the_latency_estimate_follows_a_rise_and_a_fall_within_a_few_dozen_answers():
    estimate = LatencyEstimate()
    assert estimate.mean_s == 1.0 and estimate.answers == 0  # on the slow side, before answers
    estimate.answered(0.3)
    assert estimate.mean_s == pytest.approx(0.3)  # the first answer replaces the guess
    for _ in range(40):
        estimate.answered(0.3)
    for _ in range(40):  # a second or two at 25 a second
        estimate.answered(1.2)
    assert estimate.mean_s > 1.0
    for _ in range(40):
        estimate.answered(0.3)
    assert estimate.mean_s < 0.45


def test_a_heavy_tail_raises_the_mean_the_pool_is_sized_by():
    estimate = LatencyEstimate()
    for n in range(400):
        estimate.answered(3.0 if n % 20 == 0 else 0.6)  # 5% five times slower
    assert 0.6 < estimate.mean_s < 1.0


def test_the_ceiling_setting_takes_a_number_or_auto():
    assert CONCURRENCY.read({}) is None  # auto by default
    assert CONCURRENCY.read({"SWEEPER_CONCURRENCY": "auto"}) is None
    assert CONCURRENCY.read({"SWEEPER_CONCURRENCY": "64"}) == 64
    with pytest.raises(ConfigError, match="SWEEPER_CONCURRENCY"):
        CONCURRENCY.read({"SWEEPER_CONCURRENCY": "0"})


def test_a_slow_stripe_gets_more_in_flight_and_the_sweep_says_what_it_measured():
    gateway = MemoryGateway(open_=300)
    gateway.expire_delay_s = 0.2  # 100 a second need 20 in flight, 34 with headroom
    before = threading.active_count()
    result, _ = sweep_in_memory(gateway, max_rps=100)
    assert result.expired_count == 300 and result.succeeded
    assert result.most_in_flight > 16  # a fixed pool of 8 made 40 a second at most
    assert result.latency_ms is not None and 150 <= result.latency_ms <= 400
    assert 25 <= result.concurrency <= 60
    assert threading.active_count() == before  # the pool's threads ended with the sweep
    assert result.stripe_requests / (result.duration_ms / 1000) > 60


def test_a_ceiling_holds_the_pool_however_slow_stripe_is():
    gateway = MemoryGateway(open_=60)
    gateway.expire_delay_s = 0.05
    result, _ = sweep_in_memory(gateway, max_rps=1000, concurrency=3)
    assert result.expired_count == 60 and result.most_in_flight == 3 and result.concurrency == 3


def test_the_threads_grow_and_shrink_with_the_size_while_they_run():
    size, done = [2], []
    busy = threading.Lock()

    def work(item: str) -> None:
        time.sleep(0.02)
        with busy:
            done.append(item)

    threads = ElasticThreads(work, lambda: size[0], backlog=0, name="t")
    for n in range(40):
        threads.put(f"a{n}")
    assert threads.most_threads <= 2 and threads.most_busy <= 2
    size[0] = 12
    for n in range(120):
        threads.put(f"b{n}")
    assert threads.most_busy > 6  # it grew as soon as there was work and room
    assert threads.most_threads <= 12
    size[0] = 3
    for n in range(40):
        threads.put(f"c{n}")
    threads.drain()
    deadline = time.monotonic() + 3
    while threads.running > 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threads.running <= 3  # threads beyond the size ended
    threads.close()
    assert threads.running == 0 and len(done) == 200


def test_a_failing_item_does_not_cost_the_pool_its_thread(caplog):
    def work(item: str) -> None:
        if item == "x":
            raise RuntimeError("a bug")

    threads = ElasticThreads(work, lambda: 1, backlog=0, name="t")
    threads.put("x")
    threads.put("y")
    threads.drain()
    threads.close()
    assert threads.running == 0 and "work on x failed" in caplog.text


def test_the_bucket_not_the_pool_sets_the_rate():
    gateway = MemoryGateway(open_=120)
    gateway.expire_delay_s = 0.3  # the pool grows to 19 (20 a second x 0.3 s x 1.5 + 4)
    sent: list[float] = []
    original = gateway.expire

    def timed(session_id: str, idempotency_key: str) -> None:
        sent.append(time.monotonic())
        original(session_id, idempotency_key)

    gateway.expire = timed  # type: ignore[method-assign]
    result, _ = sweep_in_memory(gateway, max_rps=20)
    assert result.expired_count == 120
    sent.sort()
    most = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
    assert most <= 21  # the rate's worth, and the place the bucket leaves a neighbour
    assert len(sent) / (sent[-1] - sent[0]) <= 20.5


def test_the_last_pass_lists_while_the_last_expires_are_in_flight_and_counts_them_right():
    gateway = MemoryGateway(open_=5)
    gateway.expire_delay_s = 0.3  # still open when the next pass lists them
    failing = gateway.open_ids()[0]
    gateway.fail_expire(failing, SessionRejected("No such thing.", 400))
    result, outcomes = sweep_in_memory(gateway, max_attempts=1)
    assert gateway.calls["expire"] == 5  # none sent twice
    assert result.expired_count == 4 and [f["id"] for f in result.failed] == [failing]
    assert result.remaining_open_count == 1  # the failed one, listed while in flight
    assert [s["id"] for s in result.remaining_open_sessions] == [failing]
    assert len(outcomes) == 5


def test_the_next_page_is_listed_before_the_expire_threads_waiting_for_slots():
    """Once the first page is in, about 50 expire threads ask for slots at 25 a second; the
    listing, which they all wait for, goes first (a slot within a third of a second), or the
    pool runs dry once the first page is expired."""
    gateway = MemoryGateway(open_=150)
    gateway.expire_delay_s = gateway.list_delay_s = 1.2
    result, _ = sweep_in_memory(gateway, max_rps=25)
    assert result.expired_count == 150
    events = gateway.events
    second_page = next(n for n, (kind, at) in enumerate(events) if kind == "list" and at)
    answered_before = [kind for kind, _ in events[:second_page]].count("expire")
    assert answered_before < 18, answered_before  # those sent within 0.7 s of the first page


def test_the_webhook_endpoints_are_read_while_the_sweep_goes_on():
    """Their answer is needed only in the sweep's answer: a slow one delays no expire."""

    class SlowEndpoints(MemoryGateway):
        def webhook_endpoints(self) -> list[dict]:
            time.sleep(1.0)
            self.events.append(("endpoints", None))
            return [
                {
                    "id": "we_1",
                    "url": "https://x.test",
                    "status": "enabled",
                    "enabled_events": ["*"],
                }
            ]

    gateway = SlowEndpoints(open_=5)
    result, _ = sweep_in_memory(gateway, max_rps=100)
    assert result.expired_count == 5
    assert [kind for kind, _ in gateway.events][-1] == "endpoints"  # after every expire
    assert result.side_effects is not None
    assert result.side_effects["webhook_endpoints"] == [{"id": "we_1", "url": "https://x.test"}]
