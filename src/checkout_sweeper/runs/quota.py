"""Per-user limits, failing closed: 429 when spent, 503 (with ``Retry-After``) when the limits'
storage cannot be reached, so a destructive endpoint never runs without its limiter.

The counting itself is the ``limits`` strategy Flask-Limiter holds (a moving window, in memory
or in Redis). A sweep's quota is checked (``room``) once the account's lease is taken and
spent (``spend``) once the sweep has run, before the lease is given back: a call that fails
for a server-side reason spends nothing, and since the lease lets one sweep of the account
run at a time, no two calls can both see room for the last sweep of the hour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter, RateLimiter

from checkout_sweeper.errors import QuotaExceeded, QuotaUnavailable

log = logging.getLogger("checkout_sweeper.api")
SWEEPS_PER_HOUR = 3  # the spec's per-user quota on the endpoint
READS_PER_MINUTE = 120  # reads of a user's sweeps, every read endpoint together
REDIS_TIMEOUT_S = 2.0  # the storage answers within seconds or the call fails: never a hang


def storage_options(uri: str) -> dict[str, float]:
    if uri.startswith("memory://"):
        return {}
    return {"socket_connect_timeout": REDIS_TIMEOUT_S, "socket_timeout": REDIS_TIMEOUT_S}


def counter_for(storage_uri: str) -> RateLimiter:
    """Moving-window counts in ``storage_uri`` (memory, or Redis shared by every process):
    the per-user quota and the platform's request budget count there."""
    storage = storage_from_string(storage_uri, **storage_options(storage_uri))
    return MovingWindowRateLimiter(storage)


@dataclass(frozen=True)
class Quota:
    """A limit in Flask-Limiter's notation and the name its counts are kept under."""

    per: str
    scope: str

    @property
    def item(self) -> RateLimitItem:
        return parse(self.per)


SWEEPS = Quota(f"{SWEEPS_PER_HOUR} per hour", "sweeps")
READS = Quota(f"{READS_PER_MINUTE} per minute", "reads")


def user_key(prefix: str, user_id: int) -> str:
    """Whose count: a user's row id (never the claim text), under the service's namespace."""
    return f"{prefix}/user:{user_id}"


def room(counter: RateLimiter, quota: Quota, key: str) -> dict[str, str]:
    """Raise ``QuotaExceeded`` when ``key`` has nothing left; count nothing. The headers say
    what will be left once this call has spent its share."""
    return _window_stats(counter.test, counter, quota, key, share=1)


def spend(counter: RateLimiter, quota: Quota, key: str) -> dict[str, str]:
    """Count one call for ``key`` (a user's row id, never the claim text), or raise
    ``QuotaExceeded``; the headers say what is left."""
    return _window_stats(counter.hit, counter, quota, key, share=0)


def _window_stats(
    step: Callable[..., bool], counter: RateLimiter, quota: Quota, key: str, share: int
) -> dict[str, str]:
    try:
        allowed = step(quota.item, quota.scope, key)
        reset, remaining = counter.get_window_stats(quota.item, quota.scope, key)
    except Exception as err:
        raise _unavailable(err) from None
    if not allowed:
        raise QuotaExceeded(quota.per, _headers(quota, reset, remaining, refused=True))
    return _headers(quota, reset, remaining - share)


def _headers(
    quota: Quota, reset: float, remaining: int, *, refused: bool = False
) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": str(quota.item.amount),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(int(reset)),
    }
    if refused:
        headers["Retry-After"] = str(max(1, int(reset - time.time())))
    return headers


def _unavailable(err: Exception) -> QuotaUnavailable:
    log.error("rate-limit storage unavailable: %s", type(err).__name__)
    return QuotaUnavailable(
        "Rate limiting is unavailable (its storage cannot be reached), so no sweep is "
        "started; try again shortly."
    )
