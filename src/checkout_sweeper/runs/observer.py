"""What a running sweep tells the outside: Prometheus metrics, a progress log line every 10 s
(counts and rate) and one summary line when it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from checkout_sweeper.engine.pacing import AdaptiveTokenBucket
from checkout_sweeper.engine.tally import SessionOutcome, SweepProgress
from checkout_sweeper.metrics import (
    AUDIT_PENDING,
    IN_FLIGHT,
    PACING_RATE,
    POOL_THREADS,
    SESSIONS,
    STRIPE_RETRIES,
    SWEEP_SECONDS,
    SWEEPS_FINISHED,
    SWEEPS_RUNNING,
    SWEEPS_STARTED,
)

log = logging.getLogger("checkout_sweeper.sweep")
PROGRESS_EVERY_S = 10.0


class SweepObserver:
    """Feeds the metrics and the log from the sweep's callbacks; cheap enough for each one."""

    def __init__(self, sweep_id: str, trigger: str, bucket: AdaptiveTokenBucket) -> None:
        self.sweep_id = sweep_id
        self.trigger = trigger
        self._bucket = bucket
        self._started = time.monotonic()
        self._logged_at = self._started
        self._retries = 0
        self._pool = (0, 0)  # threads and expires in flight last shown: this sweep's share
        self.pending: Callable[[], int] = lambda: 0  # the recorder's count, once there is one

    def started(self) -> None:
        SWEEPS_STARTED.labels(self.trigger).inc()
        SWEEPS_RUNNING.inc()
        log.info("sweep started", extra={"fields": {"sweep_id": self.sweep_id}})

    def outcome(self, outcome: SessionOutcome) -> None:
        SESSIONS.labels(outcome.outcome).inc()

    def progress(self, p: SweepProgress) -> None:
        if p.retries > self._retries:
            STRIPE_RETRIES.inc(p.retries - self._retries)
            self._retries = p.retries
        PACING_RATE.set(self._bucket.rate)
        self._show_pool(p.pool_size, p.in_flight)
        AUDIT_PENDING.set(self.pending())
        now = time.monotonic()
        if now - self._logged_at >= PROGRESS_EVERY_S:
            self._logged_at = now
            log.info("sweep progress", extra={"fields": self._fields(p)})

    def finished(self, status: str, p: SweepProgress) -> None:
        SWEEPS_FINISHED.labels(self.trigger, status).inc()
        SWEEP_SECONDS.labels(self.trigger).observe(time.monotonic() - self._started)
        SWEEPS_RUNNING.dec()
        self._show_pool(0, 0)
        AUDIT_PENDING.set(0)
        log.info("sweep ended", extra={"fields": {**self._fields(p), "status": status}})

    def _show_pool(self, threads: int, in_flight: int) -> None:
        """This sweep's share of the gauges (sweeps of one process add up)."""
        POOL_THREADS.inc(threads - self._pool[0])
        IN_FLIGHT.inc(in_flight - self._pool[1])
        self._pool = (threads, in_flight)

    def _fields(self, p: SweepProgress) -> dict[str, object]:
        return {
            "sweep_id": self.sweep_id,
            "found": p.found,
            "expired": p.expired,
            "already_closed": p.already_closed,
            "failed": p.failed,
            "stripe_requests": p.requests,
            "rate_limited": p.rate_limited,
            "expired_per_s": round(p.rate, 2),
            "pacing_rps": round(self._bucket.rate, 2),
            "pool_threads": p.pool_size,
            "in_flight": p.in_flight,
        }
