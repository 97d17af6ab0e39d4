"""When the pool, not the budget, set a sweep's pace: a hint to raise ``SWEEPER_CONCURRENCY``.

With N requests in flight and Stripe answering in L seconds on average, a sweep sends at most
N / L requests a second, whatever its budget (Little's law): 8 in flight at 500 ms make 16 a
second of a sandbox's 25, and a live account's 100 need about 30 in flight at 300 ms. The
sweep cannot see that from its rate alone (it simply runs slower), so it compares the time
its requests spent waiting on Stripe with its wall time: a pool that was full all along while
the rate stayed well under the budget was the limit, and the hint says what would lift it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_REQUESTS = 50  # fewer are too short a sweep to say anything
SHORT_OF_BUDGET = 0.85  # achieved under this share of the budget: the sweep fell short
POOL_FULL = 0.75  # requests in flight on average, as a share of the pool: it was full
HEADROOM = 1.25  # the suggested pool covers the budget at 125% of the latency seen


@dataclass(frozen=True)
class PoolReading:
    """What one sweep measured: its pool, its requests and the time they spent at Stripe."""

    concurrency: int
    requests: int
    waiting_s: float  # summed over requests: from sending to the answer
    elapsed_s: float
    budget_rps: float  # the bucket's rate at the end (the fixed budget or the learned limit)

    @property
    def latency_s(self) -> float:
        return self.waiting_s / self.requests

    @property
    def achieved_rps(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def in_flight(self) -> float:
        return self.waiting_s / self.elapsed_s


def concurrency_hint(reading: PoolReading) -> str | None:
    """A sentence for the log when the pool held the sweep under its budget, else None."""
    if reading.requests < MIN_REQUESTS or reading.elapsed_s <= 0:
        return None
    if reading.achieved_rps >= SHORT_OF_BUDGET * reading.budget_rps:
        return None
    if reading.in_flight < POOL_FULL * reading.concurrency:
        return None  # slow for another reason (backoff after errors, a slow listing)
    needed = math.ceil(reading.budget_rps * reading.latency_s * HEADROOM) + 1
    return (
        f"Stripe answered in {reading.latency_s * 1000:.0f} ms on average, so "
        f"{reading.concurrency} requests in flight (SWEEPER_CONCURRENCY) allowed "
        f"{reading.achieved_rps:.1f} requests a second of the {reading.budget_rps:.0f} the "
        f"budget allows; SWEEPER_CONCURRENCY={needed} (or sweep --concurrency {needed}) would "
        "use the budget"
    )
