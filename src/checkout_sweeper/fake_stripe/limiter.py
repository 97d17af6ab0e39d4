"""Stripe's rate limits as the fake applies them.

Stripe measures its limits in requests per second per account (25 in a sandbox, 100 in live
mode), and again per named operation (``POST /v1/checkout/sessions/{id}/expire`` is one; 25
a second unless documented otherwise). A request over either is answered 429 with a
``Stripe-Rate-Limited-Reason`` header (``global-rate`` or ``endpoint-rate``) and no
``Retry-After``. Stripe's own limiter is a token bucket, whose capacity is not published:
by default the fake reads "N per second" strictly (no more than N in any one-second window);
given a burst it uses a token bucket of that capacity instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from typing import Protocol


class Window(Protocol):
    """One limiter algorithm, keyed; callers hold a lock."""

    def fits(self, key: Hashable, rps: float, now: float) -> bool: ...

    def take(self, key: Hashable, rps: float, now: float) -> None: ...


class SlidingWindow:
    """At most ``rps`` requests in any one-second window."""

    def __init__(self) -> None:
        self._sent: dict[Hashable, deque[float]] = {}

    def fits(self, key: Hashable, rps: float, now: float) -> bool:
        sent = self._sent.setdefault(key, deque())
        while sent and sent[0] <= now - 1.0:
            sent.popleft()
        return len(sent) < rps

    def take(self, key: Hashable, rps: float, now: float) -> None:
        self._sent.setdefault(key, deque()).append(now)


class TokenBucket:
    """``rps`` tokens a second into a bucket of ``capacity``; a request takes one."""

    def __init__(self, capacity: float) -> None:
        self.capacity = max(1.0, capacity)
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, as of)

    def _tokens(self, key: Hashable, rps: float, now: float) -> float:
        tokens, as_of = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - as_of) * rps)

    def fits(self, key: Hashable, rps: float, now: float) -> bool:
        return self._tokens(key, rps, now) >= 1.0

    def take(self, key: Hashable, rps: float, now: float) -> None:
        self._buckets[key] = (self._tokens(key, rps, now) - 1.0, now)


class RateLimits:
    """The account's limit and the operation's, checked together: a request refused by one
    is not counted by the other."""

    def __init__(self, burst: float = 0.0) -> None:
        self.burst = burst
        self.window: Window = TokenBucket(burst) if burst > 0 else SlidingWindow()

    def refusal(self, limits: Sequence[tuple[str, Hashable, float]], now: float) -> str | None:
        """The reason (``global-rate``, ``endpoint-rate``) of the first full limit among
        ``(reason, key, rps)``, or None once the request is counted against all of them."""
        active = [(reason, key, rps) for reason, key, rps in limits if rps > 0]
        for reason, key, rps in active:
            if not self.window.fits(key, rps, now):
                return reason
        for _, key, rps in active:
            self.window.take(key, rps, now)
        return None
