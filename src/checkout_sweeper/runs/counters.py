"""Moving-window counters in the rate-limit storage (memory, or Redis shared by every process):
the per-user quota and the platform's request budget count there. Redis answers within
seconds or the call fails: never a hung request or a hung sweep."""

from __future__ import annotations

from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter, RateLimiter

REDIS_TIMEOUT_S = 2.0


def storage_options(uri: str) -> dict[str, float]:
    if uri.startswith("memory://"):
        return {}
    return {"socket_connect_timeout": REDIS_TIMEOUT_S, "socket_timeout": REDIS_TIMEOUT_S}


def counter_for(storage_uri: str) -> RateLimiter:
    """Moving-window counts in ``storage_uri``, for any process (web, worker, command)."""
    storage = storage_from_string(storage_uri, **storage_options(storage_uri))
    return MovingWindowRateLimiter(storage)
