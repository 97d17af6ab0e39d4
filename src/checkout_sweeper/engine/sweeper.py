"""The sweep engine: find every open Checkout Session, expire it, and say what is left.

Plain Python with no web framework and no database: the HTTP endpoint and the command line
both reach ``Sweeper.run`` through ``runs.recorded_sweep``. ``Sweeper`` only orchestrates;
each job has its own collaborator:

* ``walker.ListWalker``: one pass over the open list (pages, held cursor, restarts);
* ``expirer.ExpirePool``: a pool that expires while the next page loads, as many at once as
  ``latency.pool_size`` says: the bucket's rate times the latency measured, with headroom,
  within the ceiling (``concurrency``);
* ``retry.PacedCalls``: every Stripe request under one ``pacing.AdaptiveTokenBucket`` at
  ``max_rps``, retried with backoff and full jitter when worth it;
* ``tally.Tally``: outcomes and counters, and the ``SweepResult``.

Passes: sessions created while the sweep runs appear at the head of the list; further passes
from the head pick them up until a pass finds nothing new (at most ``max_passes``). The last
pass's listing, or a separate verification listing, gives the sessions still open.

Memory: ids are kept while in flight (bounded by the pool) or failed, and, in a dry run, every
id listed (a dry run expires nothing, so that is how it knows what it has seen); outcomes go
to the ``on_outcome`` callback (the audit trail) as they happen.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from checkout_sweeper.engine.expirer import ExpirePool
from checkout_sweeper.engine.gateway import Gateway
from checkout_sweeper.engine.pacing import STRIPE_LIVE_LIMIT, STRIPE_TEST_LIMIT, AdaptiveTokenBucket
from checkout_sweeper.engine.retry import PacedCalls, RetryPolicy
from checkout_sweeper.engine.scope import EVERYTHING, Scope
from checkout_sweeper.engine.side_effects import EndpointsReading
from checkout_sweeper.engine.stop import StopSignal
from checkout_sweeper.engine.tally import SessionOutcome, SweepProgress, SweepResult, Tally
from checkout_sweeper.engine.walker import ListWalker, PassListing, WalkOptions
from checkout_sweeper.errors import SweepAborted, SweeperError
from checkout_sweeper.settings import CONCURRENCY, LIVE_RESERVE, MAX_RPS
from checkout_sweeper.vocabulary import Outcome

log = logging.getLogger("checkout_sweeper.engine")

__all__ = [
    "SessionOutcome",
    "SweepAborted",
    "SweepOptions",
    "SweepProgress",
    "SweepResult",
    "Sweeper",
]


@dataclass(frozen=True)
class SweepOptions:
    max_rps: float | None = MAX_RPS.default  # None: auto (see ``ceiling``)
    concurrency: int | None = CONCURRENCY.default  # the most in flight; None: auto
    dry_run: bool = False
    scope: Scope = EVERYTHING  # which open sessions: every one by default
    page_size: int = WalkOptions.page_size
    max_passes: int = 10
    max_attempts: int = RetryPolicy.max_attempts
    backoff_base_s: float = RetryPolicy.base_s
    backoff_cap_s: float = RetryPolicy.cap_s
    remaining_cap: int = WalkOptions.remaining_cap
    reserve: float | None = None  # share of the documented limit left to others; None: by mode
    storm_patience_s: float = RetryPolicy.storm_patience_s
    shared_gate: Callable[[], None] | None = None  # a budget shared with other sweeps, if any

    def ceiling(self, livemode: bool) -> float:
        """The most requests per second: the budget (for ``auto``, Stripe's documented limit
        of the mode; the bucket then learns the real one), within what the reserve leaves."""
        documented = documented_limit(livemode)
        budget = documented if self.max_rps is None else self.max_rps
        reserve = self.reserve_share(livemode)
        return budget if reserve == 0 else min(budget, documented * (1.0 - reserve))

    def reserve_share(self, livemode: bool) -> float:
        if self.reserve is not None:
            return self.reserve
        return LIVE_RESERVE if livemode else 0.0

    def resolved(self, now: float) -> SweepOptions:
        """With ``older_than`` fixed to a cutoff at ``now``, once, when the sweep starts."""
        return dataclasses.replace(self, scope=self.scope.resolved(now))

    def walk_options(self) -> WalkOptions:
        return WalkOptions(self.page_size, self.scope, self.dry_run, self.remaining_cap)

    def paced_calls(
        self,
        bucket: AdaptiveTokenBucket,
        tally: Tally,
        stop: StopSignal,
        sleep: Callable[[float], None],
    ) -> PacedCalls:
        """Every request of the sweep: paced by ``bucket`` (and the shared gate), retried."""
        policy = self.retry_policy()
        return PacedCalls(bucket, policy, tally, stop, sleep=sleep, shared_gate=self.shared_gate)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.max_attempts, self.backoff_base_s, self.backoff_cap_s, self.storm_patience_s
        )


SEND_JITTER = 0.5  # each send up to half an interval late: see ``SpacedSlots.acquire``


def documented_limit(livemode: bool) -> float:
    return STRIPE_LIVE_LIMIT if livemode else STRIPE_TEST_LIMIT


def paced_for(options: SweepOptions, livemode: bool) -> AdaptiveTokenBucket:
    """The bucket a sweep with ``options`` paces its requests with, in this mode."""
    return AdaptiveTokenBucket(
        options.ceiling(livemode), account_limit=documented_limit(livemode), jitter=SEND_JITTER
    )


class Sweeper:
    """One sweep of one Stripe account; create a new one per run."""

    def __init__(
        self,
        gateway: Gateway,
        options: SweepOptions | None = None,
        *,
        sweep_id: str | None = None,
        on_outcome: Callable[[SessionOutcome], None] | None = None,
        on_progress: Callable[[SweepProgress], None] | None = None,
        bucket: AdaptiveTokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.gateway = gateway
        self.options = (options or SweepOptions()).resolved(time.time())
        self.sweep_id = sweep_id or uuid.uuid4().hex
        self.tally = Tally(
            self.sweep_id, self.options.dry_run, on_outcome=on_outcome, on_progress=on_progress
        )
        self.tally.result.scope = self.options.scope.shown()
        self.bucket = bucket or paced_for(self.options, gateway.livemode)
        self.stop = StopSignal()
        self.calls = self.options.paced_calls(self.bucket, self.tally, self.stop, sleep)
        self._seen: set[str] = set()  # dry run only: nothing leaves the open list there
        self._seen_lock = threading.Lock()
        self._pool: ExpirePool | None = None
        self._endpoints: EndpointsReading | None = None
        self._passes_made = 0
        self._started = time.monotonic()

    @property
    def progress(self) -> SweepProgress:
        return self.tally.progress

    @property
    def in_flight(self) -> int:
        """Expires sent and not answered yet; on a stop they finish and are recorded."""
        return self._pool.sending if self._pool is not None else 0

    def abort(self, problem: SweeperError) -> None:
        """Stop from another thread: no new requests; ``run`` raises ``SweepAborted`` (or the
        ``problem`` itself when it is one), carrying what was done."""
        self.stop.abort(problem)

    def run(self) -> SweepResult:
        """Sweep until clean, stopped or out of passes; raises ``SweepAborted`` when stopped."""
        self._started = started = time.monotonic()
        walker = ListWalker(self.gateway, self.calls, self.stop, self, self.options.walk_options())
        self._pool = _new_pool(self)
        # The endpoints are read while the first page is listed: a latency less before the
        # first expire, and what they say is needed only in the answer.
        read = functools.partial(self.calls.call, self.gateway.webhook_endpoints)
        self._endpoints = EndpointsReading(read, name=f"endpoints-{self.sweep_id[:8]}")
        try:
            self._passes(walker)
        except BaseException:
            # Interrupted (a signal, a bug): queued expires are dropped, those in flight
            # finish and are recorded, and the caller sees the original exception.
            self.stop.interrupt()
            raise
        finally:
            self.drain()
            self._pool.close()
        self._endpoints.result()
        result = self._finish(time.monotonic() - started)
        self._pool.log_ceiling_cost(result)
        reason = self.stop.reason
        if isinstance(reason, SweepAborted):
            raise type(reason)(str(reason), result) from reason
        if reason is not None:
            raise SweepAborted(str(reason), result) from reason
        return result

    def partial_result(self) -> SweepResult:
        """What was done so far: for a sweep that was interrupted."""
        return self._finish(time.monotonic() - self._started)

    def _finish(self, duration_s: float) -> SweepResult:
        if self._endpoints is not None:  # read by now, or said not to be
            self.tally.endpoints = self._endpoints.answer
        result = self.tally.finish(self._passes_made, duration_s)
        if self._pool is not None:
            self._pool.measured(result)
        return result

    def _passes(self, walker: ListWalker) -> None:
        """Passes from the head until one hands on nothing, the scope's limit is reached or
        the sweep stops; then what is left open, in scope and out of it."""
        last: PassListing | None = None
        for _ in range(self.options.max_passes):
            self._passes_made += 1
            listing = walker.walk()
            if not self.stop.stopped:
                self.tally.listed_to_end()
            if self._pool is not None:  # the next pass lists while the last expires go on
                self._pool.settle()
            if self.stop.stopped:
                return
            if listing.dispatched == 0 or self.options.dry_run:
                last = listing
                break
            if walker.limit_reached:
                break
        self.drain()
        if not self.options.scope.everything:
            last = walker.walk(verify_only=True, whole_account=True)
        elif last is None:
            last = walker.walk(verify_only=True)
        last.settle(self.tally.has_failed, self.options.remaining_cap)
        self.tally.result.limit_reached = walker.limit_reached
        self.tally.still_open(last.count, last.sample, last.out_of_scope)

    # the walker's sink ------------------------------------------------------------------------
    def is_new(self, session_id: str) -> bool:
        if self._pool is not None and self._pool.busy_with(session_id):
            return False
        if self.tally.has_failed(session_id):
            return False
        if not self.options.dry_run:
            return True
        with self._seen_lock:
            if session_id in self._seen:
                return False
            self._seen.add(session_id)
            return True

    def recovery_enabled(self, session_id: str) -> None:
        self.tally.recovery_enabled(session_id)

    def handled(self, session_id: str) -> bool:
        """Its expire is queued, in flight or done (a listing may lag behind it)."""
        busy = self._pool is not None and self._pool.busy_with(session_id)
        return busy or self.tally.settled(session_id)

    def forget(self, session_id: str) -> None:
        with self._seen_lock:
            self._seen.discard(session_id)

    def dispatch(self, session_id: str) -> None:
        self.tally.found()
        if self.options.dry_run:
            self.tally.record(SessionOutcome(session_id, Outcome.WOULD_EXPIRE, attempts=0))
        elif self._pool is not None:
            self._pool.dispatch(session_id)

    def drain(self) -> None:
        if self._pool is not None:
            self._pool.drain()


def _new_pool(sweeper: Sweeper) -> ExpirePool:
    """The sweep's expire pool, sized as it runs up to the ceiling the options allow."""
    return ExpirePool(
        sweeper.gateway,
        sweeper.calls,
        sweeper.tally,
        sweeper.stop,
        sweep_id=sweeper.sweep_id,
        ceiling=sweeper.options.concurrency,
        backlog=sweeper.options.page_size,
    )
