"""Retries: which Stripe errors are worth another attempt, and how long to wait before it.

Every attempt, first or not, takes a slot from the pacing bucket, so retries never push a
sweep over its budget. A 429 for the rate slows the bucket down, and the bucket alone paces its
retry: it spends no attempt and waits no backoff, so when a storm of 429s ends the requests
go again as soon as the bucket climbs back, not after a backoff of up to ``cap_s``. A storm
longer than ``storm_patience_s`` stops the sweep with a message that says so. Other errors
wait exponential backoff with *full jitter* (a uniform draw between 0 and
``min(cap, base * 2**n)``), which spreads the retries of many threads best; never shorter than
a ``Retry-After`` Stripe sent (capped).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from checkout_sweeper.engine.latency import LatencyEstimate
from checkout_sweeper.engine.pacing import AdaptiveTokenBucket
from checkout_sweeper.engine.stop import StopSignal
from checkout_sweeper.engine.tally import Tally
from checkout_sweeper.errors import RateLimitStorm, RetryableError, StripeProblem

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a retryable error gets, and the backoff between them."""

    max_attempts: int = 6
    base_s: float = 0.25
    cap_s: float = 8.0
    storm_patience_s: float = 600.0  # every request refused this long: the sweep stops

    def backoff_s(self, attempt: int, problem: RetryableError, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        asked = min(problem.retry_after_s or 0.0, self.cap_s)
        return max(rng.uniform(0, ceiling), asked)


class PacedCalls:
    """Runs Stripe requests under the bucket, retrying what the policy says to retry."""

    def __init__(
        self,
        bucket: AdaptiveTokenBucket,
        policy: RetryPolicy,
        tally: Tally,
        stop: StopSignal,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        shared_gate: Callable[[], None] | None = None,
        latency: LatencyEstimate | None = None,
    ) -> None:
        self.bucket = bucket
        self.latency = latency or LatencyEstimate()  # what sizes the expire pool
        self._shared_gate = shared_gate  # another budget this request must also fit in
        self.policy = policy
        self._tally = tally
        self._stop = stop
        self._sleep = sleep
        self._rng = rng or random.Random()

    def call(self, request: Callable[[], T], *, ahead: bool = False) -> T:
        """``request()`` once or more; the last ``RetryableError`` is raised when they run out,
        ``SweepStopped`` when the sweep stopped before a request could start. ``ahead``: its
        slots go before those of the requests waiting (the listing feeds them all)."""
        attempt = 0
        while True:
            attempt += 1
            self._stop.check()  # a stopped sweep drops its queued requests without a slot
            self.bucket.acquire(ahead)
            if self._shared_gate is not None:
                self._shared_gate()
            self._stop.check()  # the wait for a slot may have outlasted the lease deadline
            self._tally.request()
            try:
                answer = self._timed(request)
            except RetryableError as problem:
                if problem.rate_limited:
                    self._rate_limited(problem)
                    attempt -= 1  # the bucket paces it; a storm is bounded by patience
                elif attempt >= self.policy.max_attempts or self._stop.stopped:
                    raise
                else:
                    self._tally.retried()
                    self._sleep(self.policy.backoff_s(attempt, problem, self._rng))
            except StripeProblem:
                self.bucket.answered()  # refused for the session, not for the rate
                raise
            else:
                self.bucket.answered()
                return answer

    def _rate_limited(self, problem: RetryableError) -> None:
        """Slow the bucket; stop the sweep when every request has been refused for longer than
        the policy's patience (then raise the 429 itself)."""
        self.bucket.penalize(problem.retry_after_s)
        self._tally.rate_limited()
        storm_s = self.bucket.storm_s()
        if storm_s > self.policy.storm_patience_s:
            self._stop.abort(
                RateLimitStorm(
                    f"Stripe refused every request (429 rate_limit) for {storm_s:.0f} s, longer "
                    f"than this sweep waits ({self.policy.storm_patience_s:g} s); what is left "
                    "stays open for the next sweep"
                )
            )
        if self._stop.stopped:
            raise problem
        self._tally.retried()

    def _timed(self, request: Callable[[], T]) -> T:
        """``request()``, its time at Stripe counted whatever the answer, and, unless it was a
        429 for the rate (refused before any work), in the latency that sizes the pool."""
        sent, worked = time.monotonic(), True
        try:
            return request()
        except RetryableError as problem:
            worked = not problem.rate_limited
            raise
        finally:
            took = time.monotonic() - sent
            self._tally.waited(took)
            if worked:
                self.latency.answered(took)
