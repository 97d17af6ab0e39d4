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
import time
from collections.abc import Callable

from limits import RateLimitItemPerSecond

from checkout_sweeper.metrics import PLATFORM_BUDGET_UNAVAILABLE
from checkout_sweeper.runs.counters import counter_for

log = logging.getLogger("checkout_sweeper.platform")
NAMESPACE = "checkout-sweeper-platform"
SHORTEST_WAIT_S = 0.005


@functools.cache
def platform_gate(storage_uri: str, platform: str, rps: float) -> Callable[[], None]:
    """The gate every sweep of ``platform`` in this process shares (one counter, one key)."""
    counter = counter_for(storage_uri)
    item = RateLimitItemPerSecond(max(1, int(rps)))

    def acquire() -> None:
        """Block until the platform's window has room for one more request."""
        while True:
            try:
                if counter.hit(item, NAMESPACE, platform):
                    return
                reset, _ = counter.get_window_stats(item, NAMESPACE, platform)
            except Exception as err:  # the storage is away: this request goes unpaced by it
                PLATFORM_BUDGET_UNAVAILABLE.inc()
                log.warning("the platform budget cannot be read (%s); not waiting for it", err)
                return
            time.sleep(max(SHORTEST_WAIT_S, reset - time.time()))

    return acquire
