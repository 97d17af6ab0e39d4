"""How many expires to keep in flight: the budget's rate times the latency Stripe shows.

By Little's law a pool of N requests in flight, each answered in L seconds, sends at most N / L
requests a second. A fixed pool caps a sweep at that whatever its budget (8 at 600 ms: 13 a
second of a sandbox's 25), so the pool sizes itself: N = rate x L x ``HEADROOM`` + ``SPARE``,
where rate is the pacing bucket's rate in force (the budget, the learned limit, the floor in a
storm) and L an exponentially weighted mean of recent answers. The headroom covers a heavy tail
(a share of requests several times slower holds places longer than the mean says) and the
spread of a mean over few answers; the spare covers the listing and retries. The pool only
makes room: the bucket alone decides when a request goes, so a larger pool never sends faster.

Bounds: at least ``FLOOR``, at most the ceiling (``SWEEPER_CONCURRENCY``, or ``AUTO_CEILING``
for ``auto``): 100 requests a second at 800 ms. Before the first answer, ``START_LATENCY_S``
is assumed (too high costs a few idle threads, too low a slow start). A 429 answers at once,
before Stripe does any work, so it says nothing of the latency and is not counted.
"""

from __future__ import annotations

import math
import threading

AUTO_CEILING = 128  # requests in flight at most when SWEEPER_CONCURRENCY is auto
FLOOR = 4  # requests in flight at least
HEADROOM = 1.5  # in flight for 150% of the rate times the mean latency
SPARE = 4  # and this many more: the listing, retries, a slow answer or two
START_LATENCY_S = 1.0  # assumed before the first answer: on the slow side, threads are cheap
WEIGHT = 0.05  # each answer's weight in the mean: about the last 20 answers (a second at 25/s)


class LatencyEstimate:
    """A running mean of Stripe's answer times; thread-safe."""

    def __init__(self, start_s: float = START_LATENCY_S, weight: float = WEIGHT) -> None:
        self._mean = start_s
        self._weight = weight
        self._answers = 0
        self._lock = threading.Lock()

    def answered(self, seconds: float) -> None:
        """One answer took ``seconds`` from sending; the first ones weigh more (a plain mean)."""
        with self._lock:
            self._answers += 1
            weight = max(self._weight, 1.0 / self._answers)
            self._mean += weight * (max(seconds, 0.0) - self._mean)

    @property
    def mean_s(self) -> float:
        with self._lock:
            return self._mean

    @property
    def answers(self) -> int:
        with self._lock:
            return self._answers


def pool_size(rate: float, latency_s: float, ceiling: int) -> int:
    """Requests in flight for ``rate`` a second at ``latency_s``, within the bounds."""
    wanted = math.ceil(rate * latency_s * HEADROOM) + SPARE
    return max(min(FLOOR, ceiling), min(ceiling, wanted))
