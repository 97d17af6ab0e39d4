"""Client-side pacing: a token bucket that keeps a sweep under its share of Stripe's rate limit.

Stripe counts every request of an account against one budget, so the bucket is shared by the
listing and the expiring threads alike. A 429 means someone else (the app itself, another
tool) is spending the same budget: the bucket cuts its rate by 30% and climbs back slowly
(additive increase, multiplicative decrease, as TCP does) instead of hammering the limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DECREASE_ON_429 = 0.7


class AdaptiveTokenBucket:
    """Hands out request slots at ``rate`` per second, with a small burst; thread-safe."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        min_rate: float = 1.0,
        recovery_per_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.max_rate = rate
        self.rate = rate
        self.min_rate = min(min_rate, rate)
        # Evenly spaced requests put at most rate + burst into any one-second window, whatever
        # window the limiter on the other side uses. At Stripe's rates (up to 20/s) there is no
        # burst at all; at hundreds a second a 5% catch-up absorbs thread-scheduling jitter.
        self.burst = burst if burst is not None else max(1.0, rate / 20)
        self.recovery_per_s = recovery_per_s if recovery_per_s is not None else max(0.5, rate / 40)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = clock()
        self._last_adjust = self._next_slot

    def acquire(self) -> None:
        """Block until this caller may send one request."""
        with self._lock:
            now = self._clock()
            self._recover(now)
            interval = 1.0 / self.rate
            slot = max(self._next_slot, now - (self.burst - 1) * interval)
            self._next_slot = slot + interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)

    def penalize(self) -> None:
        """Stripe said 429: cut the rate by 30% (not below ``min_rate``); delay the next slot."""
        with self._lock:
            now = self._clock()
            self.rate = max(self.min_rate, self.rate * DECREASE_ON_429)
            self._last_adjust = now
            self._next_slot = max(self._next_slot, now + 1.0 / self.rate)

    def _recover(self, now: float) -> None:
        if self.rate < self.max_rate:
            elapsed = now - self._last_adjust
            self.rate = min(self.max_rate, self.rate + elapsed * self.recovery_per_s)
        self._last_adjust = now
