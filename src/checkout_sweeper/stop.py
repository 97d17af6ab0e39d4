"""Why a sweep stops early, shared by the walker, the expire pool and the retry loop.

Two ways: a Stripe problem that ends the sweep (the key was rejected, Stripe stayed unreachable,
the lease was lost), or an interruption (a signal). Either way no new request starts; requests
already in flight finish and are recorded.
"""

from __future__ import annotations

import threading

from .errors import StripeProblem


class StopSignal:
    """Set once from any thread; read by every loop before it sends a request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: StripeProblem | None = None
        self._interrupted = threading.Event()

    def abort(self, problem: StripeProblem) -> None:
        """End the sweep for ``problem``; the first reason given is the one reported."""
        with self._lock:
            if self._reason is None:
                self._reason = problem

    def interrupt(self) -> None:
        self._interrupted.set()

    @property
    def reason(self) -> StripeProblem | None:
        return self._reason

    @property
    def stopped(self) -> bool:
        return self._reason is not None or self._interrupted.is_set()
