"""The gate every Stripe request of the fake passes before it does anything: counted, rate
limited per account and per operation as Stripe does, delayed, and perhaps failed on purpose;
after it acts, its answer may be lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from checkout_sweeper.fake_stripe.faults import lock_timeout, rate_limited, server_error
from checkout_sweeper.fake_stripe.limiter import RateLimits

if TYPE_CHECKING:
    from checkout_sweeper.fake_stripe.state import FakeStripeState


class RequestGate:
    """Faults and counters on one request's way in and out; shares the state's lock."""

    def __init__(self, state: FakeStripeState) -> None:
        self._state = state
        self._limits = RateLimits()

    @contextmanager
    def tracking(self, operation: str) -> Iterator[None]:
        """Count the request and how many are in flight at once."""
        with self._state.lock:
            stats = self._state.stats
            stats.requests[operation] += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            yield
        finally:
            with self._state.lock:
                self._state.stats.in_flight -= 1

    def admit(self, livemode: bool, account: str, operation: str, key: str = "") -> None:
        """Note who sent it and when; raise Stripe's 429 when the account's limit or the
        operation's is reached."""
        with self._state.lock:
            now = self._state.clock()
            sent = self._state.stats.senders.setdefault(key[-4:], [time.time(), 0.0])
            sent[1] = time.time()
            self._state.stats.requests_by_account[account] += 1
            faults = self._state.faults
            if faults.burst != self._limits.burst:
                self.reset_limits()
            reason = self._limits.refusal(
                [
                    ("global-rate", (livemode, account), faults.rps),
                    ("endpoint-rate", (livemode, account, operation), faults.operation_rps),
                ],
                now,
            )
            if not reason and self._chance(faults.refuse_rate):
                reason = "global-rate"
            if reason:
                self._state.stats.rate_limited += 1
                self._state.stats.limited_by_account[account] += 1
                raise rate_limited(reason)

    def reset_limits(self) -> None:
        """Start every limit afresh (callers hold the state's lock)."""
        self._limits = RateLimits(self._state.faults.burst)

    def before_work(self, operation: str) -> None:
        """Latency, then perhaps an injected 5xx or object lock (before the request does
        anything)."""
        faults = self._state.faults
        latency_s = faults.latency_s(self._state.random.random)
        if latency_s:
            time.sleep(latency_s)
        if self._chance(faults.fail_rate_for(operation)):
            with self._state.lock:
                self._state.stats.server_errors += 1
            raise server_error()
        if operation == "expire" and self._chance(faults.lock_rate):
            with self._state.lock:
                self._state.stats.lock_timeouts += 1
            raise lock_timeout()

    def midway(self) -> None:
        """Perhaps fail a keyed request once it started executing: Stripe saves that 500 under
        the idempotency key and replays it (``Idempotent-Replayed: true``) for the same key."""
        if self._chance(self._state.faults.saved_fail_rate):
            with self._state.lock:
                self._state.stats.server_errors += 1
            raise server_error()

    def after_work(self, method: str) -> None:
        """Perhaps lose the answer of a POST that was carried out."""
        if method == "POST" and self._chance(self._state.faults.lost_rate):
            with self._state.lock:
                self._state.stats.lost_answers += 1
            raise server_error()

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._state.random.random() < rate
