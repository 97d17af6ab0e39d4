"""One request budget for every sweep of a platform's connected accounts, in every process.

Stripe measures its limits per account; a platform whose connected accounts' requests count
against one budget of its own (a limit Stripe raised or set for the platform, or a budget the
platform keeps for its live traffic) sets ``SWEEPER_PLATFORM_MAX_RPS``. Each request of a
sweep acting on a connected account then also takes a place in a moving one-second window kept
in the rate-limit storage (Redis when there is more than one process), so all workers together
stay under it. When the storage cannot be reached the sweeps go on at their own pace: the
failure is logged and counted, since stopping every sweep would not make the platform safer.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable

import redis

from checkout_sweeper.engine.pacing import RecentTimes
from checkout_sweeper.metrics import PLATFORM_BUDGET_UNAVAILABLE
from checkout_sweeper.runs.quota import storage_options

log = logging.getLogger("checkout_sweeper.platform")
NAMESPACE = "checkout-sweeper-platform"
SHORTEST_WAIT_S = 0.005


# One place in a moving one-second window, timed by the Redis server's own clock inside the
# script: a client's clock, read before its call reaches Redis, would let a thread that was
# held up count itself in a window that has already moved on.
TAKE_PLACE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local limit = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - 1)
if redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], t, ARGV[2])
    redis.call('PEXPIRE', KEYS[1], 2000)
    return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + 1 - t)
"""


@functools.cache
def platform_gate(storage_uri: str, platform: str, rps: float) -> Callable[[], None]:
    """The gate every sweep of ``platform`` in this process shares: in this process alone
    for ``memory://``, else in Redis, shared by every process."""
    if storage_uri.startswith("memory://"):
        return _local_gate(max(1, int(rps)))
    client = redis.Redis.from_url(storage_uri, **storage_options(storage_uri))
    take_place = client.register_script(TAKE_PLACE)
    key, limit = f"{NAMESPACE}:{platform}", max(1, int(rps))

    def acquire() -> None:
        """Block until the platform's window has room for one more request."""
        while True:
            try:
                wait = float(take_place(keys=[key], args=[limit, uuid.uuid4().hex]))
            except redis.RedisError as err:  # the storage is away: this request goes unpaced
                PLATFORM_BUDGET_UNAVAILABLE.inc()
                log.warning("the platform budget cannot be read (%s); not waiting for it", err)
                return
            if wait <= 0:
                return
            time.sleep(max(SHORTEST_WAIT_S, wait))

    return acquire


def _local_gate(rps: int) -> Callable[[], None]:
    """The same moving window, kept in this process (the ``limits`` memory storage may let two
    threads in at once when its window has just emptied)."""
    sent = RecentTimes(1.0)
    lock = threading.Lock()

    def acquire() -> None:
        while True:
            with lock:
                now = time.monotonic()
                if sent.count(now) < rps:
                    sent.add(now)
                    return
                wait = sent.free_at() - now
            time.sleep(max(SHORTEST_WAIT_S, wait))

    return acquire
