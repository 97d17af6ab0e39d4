"""Per-user limits, failing closed: 429 when spent, 503 (with ``Retry-After``) when the limits'
storage cannot be reached, so a destructive endpoint never runs without its limiter.

The counting itself is the ``limits`` strategy Flask-Limiter holds (a moving window, in memory
or in Redis). A sweep's call is reserved at the door (``reserve``, one atomic hit), so a 202
is never followed by "rate limit exceeded", and no two callers can both take the last call
of the hour; a sweep that could do nothing for a reason of the server's gives it back
(``give_back``: a credit the next reservation uses).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter, RateLimiter
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError
from redis.retry import Retry

from checkout_sweeper.errors import QuotaExceeded, QuotaUnavailable

log = logging.getLogger("checkout_sweeper.api")
SWEEPS_PER_HOUR = 3  # the spec's per-user quota on the endpoint
READS_PER_MINUTE = 120  # reads of a user's sweeps, every read endpoint together
REDIS_TIMEOUT_S = 2.0  # the storage answers within seconds or the call fails: never a hang


def storage_options(uri: str) -> dict[str, object]:
    if uri.startswith("memory://"):
        return {}
    return redis_options(REDIS_TIMEOUT_S)


def redis_options(timeout_s: float) -> dict[str, object]:
    """Options for every Redis client of the project (the quota, the platform's budget, the
    job queue): each call answers within ``timeout_s`` or fails, and a pooled connection that
    died meanwhile (a Redis restarted, a network blip that healed) costs no call: a call that
    meets a dead one is tried once more on a fresh connection. (No periodic health check: its
    PING goes out before the connection selects its database.)"""
    return {
        "socket_connect_timeout": timeout_s,
        "socket_timeout": timeout_s,
        # a dead connection is tried once more; a silent Redis is not (its timeout would double)
        "retry": Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        "retry_on_error": [ConnectionError],
    }


def counter_for(storage_uri: str) -> RateLimiter:
    """Moving-window counts in ``storage_uri`` (memory, or Redis shared by every process):
    the per-user quota and the platform's request budget count there."""
    # limits passes the options to redis-py as they are; its hint knows only scalars
    options: dict[str, Any] = storage_options(storage_uri)
    storage = storage_from_string(storage_uri, **options)
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


def reserve(counter: RateLimiter, quota: Quota, key: str) -> dict[str, str]:
    """Take one call of ``key``'s quota now, atomically (two callers cannot both take the
    last one), or one given back by a sweep that could do nothing; ``QuotaExceeded`` when
    neither is left. The headers say what is left."""
    try:
        taken = counter.hit(quota.item, quota.scope, key) or _use_credit(counter, quota, key)
        reset, remaining = counter.get_window_stats(quota.item, quota.scope, key)
        remaining += _credits(counter, quota, key)
    except Exception as err:
        raise _unavailable(err) from None
    if not taken:
        raise QuotaExceeded(quota.per, _headers(quota, reset, remaining, refused=True))
    return _headers(quota, reset, remaining)


def give_back(counter: RateLimiter, quota: Quota, key: str, held_s: float) -> None:
    """A call taken ``held_s`` ago is given back (its sweep could do nothing, for a reason
    of the server's): a credit the next ``reserve`` uses, for as long as the call would
    still have counted. Logged, never raised: the sweep's own answer matters more."""
    left_s = quota.item.get_expiry() - held_s
    if left_s < 1:
        return
    try:
        counter.storage.incr(_credit_key(quota, key), int(left_s), 1)
    except Exception as err:
        log.error("a call of the quota could not be given back: %s", type(err).__name__)


def _credit_key(quota: Quota, key: str) -> str:
    return f"{quota.scope}/given-back/{key}"


def _credits(counter: RateLimiter, quota: Quota, key: str) -> int:
    return max(0, int(counter.storage.get(_credit_key(quota, key))))


def _use_credit(counter: RateLimiter, quota: Quota, key: str) -> bool:
    """Take one given-back call, if there is one (atomically: the count never goes below 0)."""
    if _credits(counter, quota, key) <= 0:
        return False
    if counter.storage.incr(_credit_key(quota, key), quota.item.get_expiry(), -1) >= 0:
        return True
    counter.storage.incr(_credit_key(quota, key), quota.item.get_expiry(), 1)  # lost a race
    return False


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
