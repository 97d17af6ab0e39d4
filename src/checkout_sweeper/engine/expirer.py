"""The expire pool: a bounded set of threads that expire sessions while the next page loads.

``dispatch`` blocks once the pool's size plus ``backlog`` is queued: a backlog of a page lets the
next page load while this one is expired (no gap in the pacing at each page boundary), and a
fast listing never runs further ahead than that; ``drain`` waits until nothing is in flight
(before a restart or a new pass).
Every expire carries the idempotency key ``checkout-sweeper:<sweep>:<session>``, so a retry after
a lost answer never acts twice.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from checkout_sweeper.engine.gateway import Gateway
from checkout_sweeper.engine.retry import PacedCalls
from checkout_sweeper.engine.stop import StopSignal
from checkout_sweeper.engine.tally import SessionOutcome, Tally
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
    """Dispatch, drain and stop the expires of one sweep."""

    def __init__(
        self,
        gateway: Gateway,
        calls: PacedCalls,
        tally: Tally,
        stop: StopSignal,
        *,
        sweep_id: str,
        concurrency: int,
        backlog: int,
    ) -> None:
        self._gateway = gateway
        self._calls = calls
        self._tally = tally
        self._stop = stop
        self._sweep_id = sweep_id
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="expire")
        self._slots = threading.BoundedSemaphore(concurrency + backlog)
        self._idle = threading.Condition()
        self._in_flight: set[str] = set()  # queued or sent
        self._sending = 0

    @property
    def sending(self) -> int:
        """Expires sent to Stripe and not answered yet (queued ones are not counted)."""
        with self._idle:
            return self._sending

    def busy_with(self, session_id: str) -> bool:
        with self._idle:
            return session_id in self._in_flight

    def dispatch(self, session_id: str) -> None:
        self._slots.acquire()
        with self._idle:
            self._in_flight.add(session_id)
        self._executor.submit(self._expire, session_id)

    def drain(self) -> None:
        """Wait until no expire is queued or in flight."""
        with self._idle:
            self._idle.wait_for(lambda: not self._in_flight)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _expire(self, session_id: str) -> None:
        with self._idle:
            self._sending += 1
        try:
            key = idempotency_key(self._sweep_id, session_id)
            self._tally.record(self._outcome(session_id, key))
        except SweepStopped as stopped:  # never sent: left open, for the next sweep
            log.debug("expire of %s not sent: %s", session_id, stopped)
        finally:
            self._slots.release()
            with self._idle:
                self._sending -= 1
                self._in_flight.discard(session_id)
                self._idle.notify_all()

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
