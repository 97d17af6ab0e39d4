"""The expire pool: threads that expire sessions while the next page loads, as many as the
sweep's ``size()`` says (the budget's rate times Stripe's latency: ``latency``).

``dispatch`` blocks once the pool's size plus ``backlog`` is queued: a backlog of a page lets the
next page load while this one is expired (no gap in the pacing at each page boundary), and a
fast listing never runs further ahead than that; ``drain`` waits until nothing is in flight
(before a restart or a new pass).
Every expire carries the idempotency key ``checkout-sweeper:<sweep>:<session>``, so a retry after
a lost answer never acts twice.
"""

from __future__ import annotations

import logging

from checkout_sweeper.engine.elastic import ElasticThreads
from checkout_sweeper.engine.gateway import Gateway
from checkout_sweeper.engine.headroom import PoolReading, log_ceiling_cost
from checkout_sweeper.engine.latency import AUTO_CEILING, pool_size
from checkout_sweeper.engine.retry import PacedCalls
from checkout_sweeper.engine.stop import StopSignal
from checkout_sweeper.engine.tally import SessionOutcome, SweepResult, Tally
from checkout_sweeper.errors import (
    FatalStripeError,
    RetryableError,
    SessionNotOpen,
    SessionRejected,
    StripeProblem,
    SweepStopped,
)
from checkout_sweeper.vocabulary import Outcome

log = logging.getLogger("checkout_sweeper.engine")


def idempotency_key(sweep_id: str, session_id: str) -> str:
    return f"checkout-sweeper:{sweep_id}:{session_id}"


def _closed(
    session_id: str, closed: SessionNotOpen, attempts: int, maybe_acted: bool
) -> SessionOutcome:
    """A session found closed. ``expired`` is claimed only when an earlier attempt of ours may
    have acted (its answer was lost after it reached Stripe, on a Stripe that did not replay
    the key); after 429s alone, which Stripe refuses before acting, the session expired by
    itself (``expires_at``) or by another's request: ``already_closed``."""
    if closed.status == "expired" and maybe_acted:
        return SessionOutcome(session_id, Outcome.EXPIRED, attempts=attempts)
    return SessionOutcome(session_id, Outcome.ALREADY_CLOSED, closed.status, attempts=attempts)


class ExpirePool:
    """Dispatch, drain and stop the expires of one sweep, on as many threads as ``size()``
    says (``elastic.ElasticThreads``): it grows as soon as there is work and room, and
    shrinks as the size does."""

    def __init__(
        self,
        gateway: Gateway,
        calls: PacedCalls,
        tally: Tally,
        stop: StopSignal,
        *,
        sweep_id: str,
        ceiling: int | None,
        backlog: int,
    ) -> None:
        self._gateway = gateway
        self._calls = calls
        self._tally = tally
        self._stop = stop
        self._sweep_id = sweep_id
        self._asked_ceiling = ceiling  # SWEEPER_CONCURRENCY; None: auto
        self.ceiling = AUTO_CEILING if ceiling is None else ceiling
        self._threads = ElasticThreads(
            self._expire,
            self.size,
            backlog=backlog,
            name=f"expire-{sweep_id[:8]}",
            on_change=tally.pool,
        )

    def size(self) -> int:
        """Expires in flight wanted now: the bucket's rate times the latency measured."""
        return pool_size(self._calls.bucket.rate, self._calls.latency.mean_s, self.ceiling)

    def measured(self, result: SweepResult) -> None:
        """What the pool measured and settled on, into ``result``."""
        if self._calls.latency.answers:
            result.latency_ms = round(self._calls.latency.mean_s * 1000)
        result.concurrency = self.size()
        result.most_in_flight = self._threads.most_busy

    def log_ceiling_cost(self, result: SweepResult) -> None:
        """Warn when a ceiling held the sweep under its budget (``headroom``)."""
        waited, took = self._tally.progress.waiting_s, result.duration_ms / 1000
        most, rate = self._threads.most_threads, self._calls.bucket.rate
        reading = PoolReading(self._asked_ceiling, most, result.stripe_requests, waited, took, rate)
        log_ceiling_cost(reading)

    @property
    def sending(self) -> int:
        """Expires sent to Stripe and not answered yet (queued ones are not counted)."""
        return self._threads.busy

    @property
    def most_threads(self) -> int:
        return self._threads.most_threads

    @property
    def workers(self) -> int:
        return self._threads.running

    def busy_with(self, session_id: str) -> bool:
        return self._threads.holds(session_id)

    def dispatch(self, session_id: str) -> None:
        """Queue an expire; blocks while the pool's size plus ``backlog`` is queued or sent."""
        self._threads.put(session_id)

    def drain(self) -> None:
        """Wait until no expire is queued or in flight."""
        self._threads.drain()

    def settle(self) -> None:
        """Wait until no expire is queued; those in flight go on."""
        self._threads.settle()

    def close(self) -> None:
        """Let the queue empty, then end every thread (they end with the sweep)."""
        self._threads.close()

    def _expire(self, session_id: str) -> None:
        try:
            key = idempotency_key(self._sweep_id, session_id)
            self._tally.record(self._outcome(session_id, key))
        except SweepStopped as stopped:  # never sent: left open, for the next sweep
            log.debug("expire of %s not sent: %s", session_id, stopped)

    def _outcome(self, session_id: str, key: str) -> SessionOutcome:
        attempts, maybe_acted = 0, False

        def attempt() -> None:
            nonlocal attempts, maybe_acted
            attempts += 1
            try:
                self._gateway.expire(session_id, key)
            except RetryableError as problem:  # a 429 says Stripe did not act; a lost answer not
                maybe_acted = maybe_acted or not (problem.rate_limited or problem.lock_contention)
                raise

        try:
            self._calls.call(attempt)
            return SessionOutcome(session_id, Outcome.EXPIRED, attempts=attempts)
        except SessionNotOpen as closed:
            return _closed(session_id, closed, attempts, maybe_acted)
        except SessionRejected as problem:
            return self._explain_refusal(session_id, problem, attempts)
        except (RetryableError, SweepStopped) as problem:
            if not self._stop.stopped:  # every attempt used
                return SessionOutcome(session_id, Outcome.FAILED, str(problem), attempts=attempts)
            if not maybe_acted:  # never reached Stripe: still open, for the next sweep
                raise SweepStopped(str(problem)) from problem
            # Sent, its answer lost, and no time to ask again: Stripe may have acted.
            reason = f"the sweep stopped before the answer came back ({problem})"
            return SessionOutcome(session_id, Outcome.UNKNOWN, reason, attempts=attempts)
        except FatalStripeError as problem:
            self._stop.abort(problem)
            return SessionOutcome(session_id, Outcome.FAILED, str(problem), attempts=attempts)
        except Exception as problem:  # a bug must not lose the record of the others
            log.exception("expire of %s failed unexpectedly", session_id)
            return SessionOutcome(session_id, Outcome.FAILED, repr(problem), attempts=attempts)

    def _explain_refusal(
        self, session_id: str, problem: SessionRejected, attempts: int
    ) -> SessionOutcome:
        """A 404 is a failure: Stripe never deletes a session, so one just listed that the
        expire cannot find means another key or account answered. A 400 without Stripe's usual
        wording: ask for the session's status before calling it a failure, since a session
        that is no longer open is not one."""
        if problem.http_status == 404:
            reason = (
                f"Stripe answered 404 (no such session) for the key and account "
                f"{self._gateway.account}: Stripe never deletes sessions, so the expire went to "
                f"another key or account than the listing ({problem})"
            )
            return SessionOutcome(session_id, Outcome.FAILED, reason, attempts=attempts)
        if problem.http_status == 400:
            try:
                status = self._calls.call(lambda: self._gateway.session_status(session_id))
            except StripeProblem as unknown:
                log.warning("status of %s after a refusal is unknown: %s", session_id, unknown)
                status = "unknown"
            if status in ("complete", "expired"):
                return SessionOutcome(session_id, Outcome.ALREADY_CLOSED, status, attempts=attempts)
        return SessionOutcome(session_id, Outcome.FAILED, str(problem), attempts=attempts)
