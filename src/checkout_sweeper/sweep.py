"""The sweep engine: find every open Checkout Session, expire it, and say what is left.

Plain Python with no web framework: the HTTP endpoint and the command line both call
``Sweeper.run``. How it stays correct and fast:

* Paging. Stripe's ``status=open`` listing is a live view: a ``starting_after`` cursor that has
  since been expired is a 404. So the last session of each page is held back (not expired) until
  the next page has been fetched with it as the cursor. If the cursor still goes stale (a customer
  paid it meanwhile), the engine lets in-flight expires finish and restarts from the head, which
  then holds only sessions it has not handled.
* Pace. Every Stripe request, listing included, takes a slot from one ``AdaptiveTokenBucket``
  at ``max_rps``; a bounded pool of ``concurrency`` threads expires while the next page loads.
* Retries. 429, 5xx and broken connections are retried with exponential backoff and full
  jitter, and every expire carries an idempotency key per (sweep, session), so a retry never acts
  twice.
* Passes. Sessions created while the sweep runs appear at the head of the list; further passes
  from the head pick them up until a pass finds nothing new (at most ``max_passes``). The last
  pass's listing, or a separate verification listing, gives the sessions still open.
* Memory. Only ids are kept while they are in flight (bounded by the pool) or failed; outcomes
  go to the ``on_outcome`` callback (the audit trail) as they happen.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from .pacing import AdaptiveTokenBucket
from .stripe_api import (
    FatalStripeError,
    RetryableError,
    SessionNotOpen,
    SessionPage,
    SessionRejected,
    StaleCursor,
    StripeProblem,
)

MAX_RESTARTS_PER_PASS = 50  # a Stripe that refuses every cursor must not loop a dry run forever

Outcome = Literal["expired", "already_closed", "failed", "would_expire"]


class Gateway(Protocol):
    """What the engine needs from Stripe (``stripe_api.StripeGateway`` in production)."""

    livemode: bool
    account: str

    def list_open(
        self, *, limit: int, starting_after: str | None, created_before: int | None
    ) -> SessionPage: ...

    def expire(self, session_id: str, idempotency_key: str) -> None: ...

    def session_status(self, session_id: str) -> str: ...


class SweepAborted(Exception):
    """Stripe could not be used (key rejected, or unreachable after every retry)."""


@dataclass(frozen=True)
class SweepOptions:
    max_rps: float = 20.0
    concurrency: int = 8
    dry_run: bool = False
    created_before: int | None = None  # only sessions created strictly before this epoch
    page_size: int = 100
    max_passes: int = 10
    max_attempts: int = 6
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 8.0
    remaining_cap: int = 100  # full session objects kept for the answer; the count is exact


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    outcome: Outcome
    error: str | None = None
    attempts: int = 1


@dataclass
class SweepResult:
    sweep_id: str
    dry_run: bool
    expired_count: int = 0
    already_closed_count: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    would_expire: list[str] = field(default_factory=list)
    remaining_open_sessions: list[dict[str, Any]] = field(default_factory=list)
    remaining_open_count: int = 0
    passes: int = 0
    stripe_requests: int = 0
    rate_limited: int = 0
    duration_ms: int = 0

    @property
    def clean(self) -> bool:
        return not self.failed and self.remaining_open_count == 0 and not self.dry_run

    def as_data(self) -> dict[str, Any]:
        """The ``data`` object of the endpoint and of ``sweep --json``."""
        data = asdict(self)
        if not self.dry_run:
            data.pop("would_expire")
        return data


@dataclass
class Progress:
    """Live counters for a progress display; read from any thread."""

    found: int = 0
    expired: int = 0
    already_closed: int = 0
    failed: int = 0
    requests: int = 0
    rate_limited: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.expired / elapsed if elapsed > 0 else 0.0


@dataclass
class _PassListing:
    """What one walk of the open list found: how many it dispatched, and what stays open."""

    dispatched: int = 0
    count: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)

    def still_open(self, session: dict[str, Any], cap: int) -> None:
        self.count += 1
        if len(self.sample) < cap:
            self.sample.append(session)

    def restart(self) -> None:
        """Listing starts again from the head, so what stays open will be seen again."""
        self.count = 0
        self.sample.clear()


class Sweeper:
    """One sweep of one Stripe account; create a new one per run."""

    def __init__(
        self,
        gateway: Gateway,
        options: SweepOptions | None = None,
        *,
        sweep_id: str | None = None,
        on_outcome: Callable[[SessionOutcome], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.options = options or SweepOptions()
        self.sweep_id = sweep_id or uuid.uuid4().hex
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._on_progress = on_progress or (lambda progress: None)
        self.bucket = AdaptiveTokenBucket(self.options.max_rps)
        self.progress = Progress()
        self.result = SweepResult(self.sweep_id, self.options.dry_run)
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._failed_ids: set[str] = set()
        self._seen: set[str] = set()  # dry run only: nothing leaves the open list there
        self._slots = threading.BoundedSemaphore(self.options.concurrency * 2)
        self._idle = threading.Condition(self._lock)
        self._fatal: StripeProblem | None = None
        self._stopping = threading.Event()
        self._random = random.Random()

    # the run ----------------------------------------------------------------------------------
    def abort(self, reason: str) -> None:
        """Stop from another thread: no new requests; ``run`` raises ``SweepAborted(reason)``."""
        self._fatal = StripeProblem(reason)

    def run(self) -> SweepResult:
        started = time.monotonic()
        with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="expire") as pool:
            self._pool = pool
            try:
                self._passes()
            except BaseException:
                # Interrupted (a signal, a bug): queued expires are dropped, those in flight
                # finish and are recorded, and the caller sees the original exception.
                self._stopping.set()
                raise
            finally:
                self._drain()
        if self._fatal is not None:
            raise SweepAborted(str(self._fatal)) from self._fatal
        progress = self.progress
        self.result.expired_count = progress.expired
        self.result.already_closed_count = progress.already_closed
        self.result.stripe_requests = progress.requests
        self.result.rate_limited = progress.rate_limited
        self.result.duration_ms = int((time.monotonic() - started) * 1000)
        return self.result

    def _passes(self) -> None:
        options = self.options
        for _ in range(options.max_passes):
            self.result.passes += 1
            listing = self._one_pass()
            self._drain()
            if listing.dispatched == 0 or options.dry_run:
                self._report_remaining(listing)
                return
        self._report_remaining(self._one_pass(verify_only=True))

    def _one_pass(self, verify_only: bool = False) -> _PassListing:
        """Walk the open list from the head, dispatching sessions not handled yet."""
        listing = _PassListing()
        cursor: str | None = None
        held: str | None = None
        restarts = 0
        while self._fatal is None and not self._stopping.is_set():
            try:
                page = self._call(
                    lambda c=cursor: self.gateway.list_open(
                        limit=self.options.page_size,
                        starting_after=c,
                        created_before=self.options.created_before,
                    )
                )
            except StaleCursor as stale:
                # Most likely the held session stopped being open on its own (a customer paid).
                # Expire it anyway: Stripe's answer says which it was, at the cost of one call.
                restarts += 1
                if restarts > MAX_RESTARTS_PER_PASS:
                    self._fatal = stale
                    break
                if held is not None:
                    if self.options.dry_run:
                        self._forget(held)  # listed again from the head if it is still open
                    else:
                        self._dispatch(held)
                    held = None
                self._drain()
                cursor = None
                listing.restart()
                continue
            except StripeProblem as problem:
                self._fatal = problem
                break
            if held is not None:
                self._dispatch(held)
                held = None
            fresh = []
            for session in page.sessions:
                new = not verify_only and self._is_new(session["id"])
                if new:
                    fresh.append(session["id"])
                if not new or self.options.dry_run:  # a dry run leaves every session open
                    listing.still_open(session, self.options.remaining_cap)
            if page.has_more and page.sessions:
                cursor = page.sessions[-1]["id"]
                if fresh and fresh[-1] == cursor:
                    held = fresh.pop()
            for session_id in fresh:
                self._dispatch(session_id)
            listing.dispatched += len(fresh) + (1 if held else 0)
            if not page.has_more or not page.sessions:
                break
        return listing

    def _report_remaining(self, listing: _PassListing) -> None:
        self.result.remaining_open_sessions = listing.sample
        self.result.remaining_open_count = listing.count

    def _is_new(self, session_id: str) -> bool:
        with self._lock:
            if session_id in self._in_flight or session_id in self._failed_ids:
                return False
            if self.options.dry_run:
                if session_id in self._seen:
                    return False
                self._seen.add(session_id)
            return True

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._seen.discard(session_id)

    # expiring ---------------------------------------------------------------------------------
    def _dispatch(self, session_id: str) -> None:
        with self._lock:
            self.progress.found += 1
        if self.options.dry_run:
            self.result.would_expire.append(session_id)
            self._record(SessionOutcome(session_id, "would_expire", attempts=0))
            return
        self._slots.acquire()
        with self._lock:
            self._in_flight.add(session_id)
        self._pool.submit(self._expire, session_id)

    def _expire(self, session_id: str) -> None:
        if self._stopping.is_set() or self._fatal is not None:
            self._slots.release()
            with self._idle:
                self._in_flight.discard(session_id)
                self._idle.notify_all()
            return
        key = f"checkout-sweeper:{self.sweep_id}:{session_id}"
        attempts = [0]

        def attempt() -> None:
            attempts[0] += 1
            self.gateway.expire(session_id, key)

        try:
            self._call(attempt)
            outcome = SessionOutcome(session_id, "expired", attempts=attempts[0])
        except SessionNotOpen as closed:
            if closed.status == "expired" and attempts[0] > 1:
                # An earlier attempt whose answer was lost did the work (a 5xx or a dropped
                # connection after Stripe acted, on a Stripe that did not replay the key).
                outcome = SessionOutcome(session_id, "expired", attempts=attempts[0])
            else:
                outcome = SessionOutcome(
                    session_id, "already_closed", closed.status, attempts=attempts[0]
                )
        except SessionRejected as problem:
            outcome = self._explain_refusal(session_id, problem, attempts[0])
        except RetryableError as problem:
            outcome = SessionOutcome(session_id, "failed", str(problem), attempts=attempts[0])
        except FatalStripeError as problem:
            self._fatal = problem
            outcome = SessionOutcome(session_id, "failed", str(problem), attempts=attempts[0])
        except Exception as problem:  # a bug must not lose the record of the others
            outcome = SessionOutcome(session_id, "failed", repr(problem), attempts=attempts[0])
        finally:
            self._slots.release()
        self._record(outcome)

    def _explain_refusal(
        self, session_id: str, problem: SessionRejected, attempts: int
    ) -> SessionOutcome:
        """A 400 without Stripe's usual wording: ask for the session's status before calling
        it a failure, since a session that is no longer open is not one."""
        if problem.http_status == 400:
            try:
                status = self._call(lambda: self.gateway.session_status(session_id))
            except StripeProblem:
                status = "unknown"
            if status in ("complete", "expired"):
                return SessionOutcome(session_id, "already_closed", status, attempts=attempts)
        return SessionOutcome(session_id, "failed", str(problem), attempts=attempts)

    def _record(self, outcome: SessionOutcome) -> None:
        with self._lock:
            self._in_flight.discard(outcome.session_id)
            progress = self.progress
            if outcome.outcome == "expired":
                progress.expired += 1
            elif outcome.outcome == "already_closed":
                progress.already_closed += 1
            elif outcome.outcome == "failed":
                self._failed_ids.add(outcome.session_id)
                self.result.failed.append({"id": outcome.session_id, "error": outcome.error or ""})
                progress.failed += 1
            self._idle.notify_all()
        self._on_outcome(outcome)
        self._on_progress(self.progress)

    def _drain(self) -> None:
        """Wait until no expire is in flight."""
        with self._idle:
            self._idle.wait_for(lambda: not self._in_flight)

    # pacing and retries -----------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run one Stripe request under the bucket, retrying what is worth retrying."""
        options = self.options
        for attempt in range(1, options.max_attempts + 1):
            self.bucket.acquire()
            with self._lock:
                self.progress.requests += 1
            try:
                return fn()
            except RetryableError as problem:
                if problem.rate_limited:
                    self.bucket.penalize()
                    with self._lock:
                        self.progress.rate_limited += 1
                if attempt == options.max_attempts or self._fatal is not None:
                    raise
                ceiling = min(options.backoff_cap_s, options.backoff_base_s * 2 ** (attempt - 1))
                delay = self._random.uniform(ceiling / 2, ceiling)
                time.sleep(max(delay, min(problem.retry_after_s or 0.0, options.backoff_cap_s)))
        raise AssertionError("unreachable")
