"""What a ceiling on the pool cost: a sentence when ``SWEEPER_CONCURRENCY`` held a sweep back.

The pool sizes itself (``latency``), so a sweep falls short of its budget for want of requests
in flight only when a ceiling stopped it growing: with N in flight at most and Stripe answering
in L seconds on average, a sweep sends at most N / L requests a second (Little's law). It
compares the time its requests spent waiting on Stripe with its wall time: a pool at its
ceiling, full all along, while the rate stayed well under the budget, was the limit, and the
sentence says what it cost and what would lift it. Under ``auto`` nothing is said.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

log = logging.getLogger("checkout_sweeper.engine")

MIN_REQUESTS = 50  # fewer are too short a sweep to say anything
SHORT_OF_BUDGET = 0.85  # achieved under this share of the budget: the sweep fell short
POOL_FULL = 0.75  # requests in flight on average, as a share of the pool: it was full
HEADROOM = 1.25  # the suggested pool covers the budget at 125% of the latency seen


@dataclass(frozen=True)
class PoolReading:
    """What one sweep measured: its pool, its requests and the time they spent at Stripe."""

    concurrency: int | None  # the ceiling, SWEEPER_CONCURRENCY; None: auto
    most_threads: int  # the most the pool grew to
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
    """A sentence for the log when the ceiling held the sweep under its budget, else None."""
    ceiling = reading.concurrency
    if ceiling is None or reading.most_threads < ceiling:
        return None  # auto, or the pool never needed all the ceiling allows
    if reading.requests < MIN_REQUESTS or reading.elapsed_s <= 0:
        return None
    if reading.achieved_rps >= SHORT_OF_BUDGET * reading.budget_rps:
        return None
    if reading.in_flight < POOL_FULL * ceiling:
        return None  # slow for another reason (backoff after errors, a slow listing)
    needed = math.ceil(reading.budget_rps * reading.latency_s * HEADROOM) + 1
    return (
        f"the ceiling SWEEPER_CONCURRENCY={ceiling} cost this sweep "
        f"{1 - reading.achieved_rps / reading.budget_rps:.0%} of its budget: Stripe answered in "
        f"{reading.latency_s * 1000:.0f} ms on average, so {ceiling} requests in flight allowed "
        f"{reading.achieved_rps:.1f} requests a second of {reading.budget_rps:.0f}; "
        f"SWEEPER_CONCURRENCY={needed} (sweep --concurrency {needed}), or auto, would use the "
        "budget"
    )


def log_ceiling_cost(reading: PoolReading) -> None:
    """Warn when the ceiling held the sweep under its budget."""
    hint = concurrency_hint(reading)
    if hint:
        log.warning(hint)
