"""Why a sweep stops early, shared by the walker, the expire pool and the retry loop.

Three ways: a problem that ends the sweep (the key was rejected, Stripe stayed unreachable, the
lease was lost), an interruption (a signal), or a deadline that passed: the service sets one
from the account lease, so a sweeper that cannot renew its lease stops sending requests before
the lease can lapse and another sweeper take the account. Either way no new request starts;
requests already in flight finish and are recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from checkout_sweeper.errors import SweeperError, SweepStopped


class StopSignal:
    """Set from any thread; checked by every loop right before it sends a request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.RLock()  # a signal handler in the same thread may abort
        self._reason: SweeperError | None = None
        self._interrupted = threading.Event()
        self._clock = clock
        self._deadline: float | None = None
        self._deadline_problem: SweeperError = SweepStopped("the deadline passed")

    def abort(self, problem: SweeperError) -> None:
        """End the sweep for ``problem``; the first reason given is the one reported."""
        with self._lock:
            if self._reason is None:
                self._reason = problem

    def interrupt(self) -> None:
        self._interrupted.set()

    def set_deadline(self, deadline: float, problem: SweeperError) -> None:
        """No request may start after ``deadline`` (on the signal's clock) unless it is moved
        again; past it, the sweep stops for ``problem``."""
        with self._lock:
            self._deadline = deadline
            self._deadline_problem = problem

    @property
    def reason(self) -> SweeperError | None:
        return self._reason

    @property
    def stopped(self) -> bool:
        if self._reason is not None or self._interrupted.is_set():
            return True
        deadline = self._deadline
        if deadline is not None and self._clock() >= deadline:
            self.abort(self._deadline_problem)
            return True
        return False

    def check(self) -> None:
        """Raise ``SweepStopped`` if no request may start now."""
        if self.stopped:
            raise SweepStopped(str(self._reason or "the sweep was interrupted"))
