"""Outcome accounting: what happened to each session, live counters, and the final result.

Expire threads report outcomes here; the progress display and the audit writer read the same
counters, so the numbers a user watches are the numbers that end up in the result and the run
row. ``SweepResult.succeeded`` is the one definition of success for the endpoint's log, the
audit row and the command's exit status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from checkout_sweeper.engine.side_effects import side_effects
from checkout_sweeper.vocabulary import JsonObject, Outcome


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    outcome: Outcome
    error: str | None = None
    attempts: int = 1


@dataclass
class SweepProgress:
    """Live counters for a progress display; read from any thread."""

    found: int = 0
    listing_complete: bool = False  # a pass listed to the end: ``found`` is the whole job
    expired: int = 0
    already_closed: int = 0
    failed: int = 0
    unknown: int = 0
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    waiting_s: float = 0.0  # summed over requests: time from sending to Stripe's answer
    pool_size: int = 0  # expire threads running now
    in_flight: int = 0  # expires under way: waiting for the pacing or sent to Stripe
    started: float = field(default_factory=time.monotonic)

    @property
    def handled(self) -> int:
        return self.expired + self.already_closed + self.failed

    @property
    def rate(self) -> float:
        """Sessions expired per second so far."""
        elapsed = time.monotonic() - self.started
        return self.expired / elapsed if elapsed > 0 else 0.0


def _doc(text: str) -> dict[str, str]:
    """Field metadata: the description the OpenAPI schema shows."""
    return {"description": text}


@dataclass
class SweepResult:
    """The ``data`` object of the endpoint and of ``sweep --json``."""

    sweep_id: str = field(metadata=_doc("Id of the sweep in the audit trail."))
    dry_run: bool = field(metadata=_doc("True when nothing was expired on purpose."))
    expired_count: int = field(default=0, metadata=_doc("Sessions this sweep expired."))
    already_closed_count: int = field(
        default=0,
        metadata=_doc(
            "Sessions that stopped being open on their own (paid or expired) before the expire."
        ),
    )
    failed: list[dict[str, str]] = field(
        default_factory=list,
        metadata=_doc("Sessions that could not be expired, each with Stripe's message."),
    )
    unknown_count: int = field(
        default=0,
        metadata=_doc(
            "Sessions whose expire was sent but whose answer was lost when the sweep stopped; "
            "the next sweep of the account settles them."
        ),
    )
    would_expire: list[str] = field(
        default_factory=list,
        metadata=_doc("Dry runs only: the ids that a real sweep would expire."),
    )
    remaining_open_sessions: list[JsonObject] = field(
        default_factory=list,
        metadata=_doc(
            "Stripe checkout.session objects still open after the sweep (at most 100); empty "
            "means clean."
        ),
    )
    remaining_open_count: int | None = field(
        default=None,
        metadata=_doc(
            "How many sessions are still open, exactly; null when the sweep stopped before "
            "its last listing could tell."
        ),
    )
    out_of_scope_open_count: int | None = field(
        default=None,
        metadata=_doc(
            "Open sessions left alone because they are outside the sweep's scope (0 for a "
            "sweep of everything); null when the sweep stopped before its last listing."
        ),
    )
    limit_reached: bool = field(
        default=False,
        metadata=_doc("The scope's limit stopped the sweep from expiring more."),
    )
    scope: JsonObject = field(
        default_factory=dict,
        metadata=_doc("Which open sessions the sweep could expire; empty: every one."),
    )
    passes: int = field(
        default=0,
        metadata=_doc("Walks of the open list from its head (new sessions appear there)."),
    )
    stripe_requests: int = field(
        default=0, metadata=_doc("Requests sent to Stripe, retries and listings included.")
    )
    rate_limited: int = field(default=0, metadata=_doc("Of those, how many Stripe answered 429."))
    duration_ms: int = field(default=0, metadata=_doc("Wall time of the sweep in milliseconds."))
    side_effects: JsonObject | None = field(
        default=None,
        metadata=_doc(
            "What the expiries set off at Stripe: expired_events (checkout.session.expired "
            "events sent, or a dry run's to be sent), webhook_endpoints (the enabled endpoints "
            "listening for them, {id, url}; null, with a note, when the key may not read them) "
            "and recovery_sessions (of the sessions, those with recovery enabled)."
        ),
    )
    latency_ms: int | None = field(
        default=None,
        metadata=_doc(
            "Stripe's answer time the sweep measured (a running mean of its last answers, 429s "
            "left out), in milliseconds; null before any answer."
        ),
    )
    concurrency: int = field(
        default=0,
        metadata=_doc(
            "Expires in flight the sweep settled on: the budget's rate times the latency "
            "measured, with headroom, within SWEEPER_CONCURRENCY (auto: at most 128)."
        ),
    )
    most_in_flight: int = field(
        default=0,
        metadata=_doc(
            "The most expires the sweep had under way at once (sent to Stripe or waiting for "
            "the pacing)."
        ),
    )

    @property
    def succeeded(self) -> bool:
        """Nothing failed and, unless it only looked or stopped at its limit as asked,
        nothing in scope is left open."""
        clean = self.remaining_open_count == 0 or self.limit_reached
        return not self.failed and (self.dry_run or clean)

    def as_data(self) -> JsonObject:
        data = asdict(self)
        if not self.dry_run:
            data.pop("would_expire")
        return data

    @classmethod
    def from_data(cls, data: JsonObject) -> SweepResult:
        """The result a run recorded (``as_data``), read back: a fleet sums its children's."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class Tally:
    """Counts outcomes and requests from every thread and builds the ``SweepResult``."""

    def __init__(
        self,
        sweep_id: str,
        dry_run: bool,
        *,
        on_outcome: Callable[[SessionOutcome], None] | None = None,
        on_progress: Callable[[SweepProgress], None] | None = None,
    ) -> None:
        self.result = SweepResult(sweep_id, dry_run)
        self.progress = SweepProgress()
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._on_progress = on_progress or (lambda progress: None)
        self._lock = threading.Lock()
        self._failed_ids: set[str] = set()
        self._recorded: set[int] = set()  # hashes of the ids with an outcome: counted once
        self._recovery: set[str] = set()  # handed-on sessions with recovery enabled
        self._recovered = 0  # of those, expired (or, in a dry run, to be)
        self.endpoints: tuple[list[JsonObject] | None, str | None] = ([], None)

    def recovery_enabled(self, session_id: str) -> None:
        with self._lock:
            self._recovery.add(session_id)

    def found(self) -> None:
        with self._lock:
            self.progress.found += 1

    def request(self) -> None:
        with self._lock:
            self.progress.requests += 1

    def waited(self, seconds: float) -> None:
        with self._lock:
            self.progress.waiting_s += seconds

    def pool(self, size: int, in_flight: int) -> None:
        """The expire pool's threads and expires in flight now (for the gauges)."""
        with self._lock:
            self.progress.pool_size = size
            self.progress.in_flight = in_flight

    def retried(self) -> None:
        with self._lock:
            self.progress.retries += 1

    def rate_limited(self) -> None:
        with self._lock:
            self.progress.rate_limited += 1

    def listed_to_end(self) -> None:
        """A pass reached the end of Stripe's list: ``found`` counts every session so far."""
        with self._lock:
            self.progress.listing_complete = True
        self._on_progress(self.progress)

    def has_failed(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._failed_ids

    def settled(self, session_id: str) -> bool:
        """The session has an outcome other than failed: expired or found closed."""
        with self._lock:
            return hash(session_id) in self._recorded and session_id not in self._failed_ids

    def record(self, outcome: SessionOutcome) -> None:
        """Count one outcome, then tell the audit writer and the progress display. A session
        handed out again (a stale page listed it after it was expired) is counted once."""
        with self._lock:
            if hash(outcome.session_id) in self._recorded:
                return
            self._recorded.add(hash(outcome.session_id))
            progress = self.progress
            if outcome.outcome in (Outcome.EXPIRED, Outcome.WOULD_EXPIRE):
                self._recovered += outcome.session_id in self._recovery
            if outcome.outcome == Outcome.EXPIRED:
                progress.expired += 1
            elif outcome.outcome == Outcome.ALREADY_CLOSED:
                progress.already_closed += 1
            elif outcome.outcome == Outcome.FAILED:
                self._failed_ids.add(outcome.session_id)
                self.result.failed.append({"id": outcome.session_id, "error": outcome.error or ""})
                progress.failed += 1
            elif outcome.outcome == Outcome.UNKNOWN:
                progress.unknown += 1
            else:
                self.result.would_expire.append(outcome.session_id)
        self._on_outcome(outcome)
        self._on_progress(self.progress)

    def still_open(self, count: int, sample: list[JsonObject], out_of_scope: int) -> None:
        self.result.remaining_open_count = count
        self.result.remaining_open_sessions = sample
        self.result.out_of_scope_open_count = out_of_scope

    def finish(self, passes: int, duration_s: float) -> SweepResult:
        """The result, with the counters as they stand now."""
        result, progress = self.result, self.progress
        result.expired_count = progress.expired
        result.already_closed_count = progress.already_closed
        result.unknown_count = progress.unknown
        result.stripe_requests = progress.requests
        result.rate_limited = progress.rate_limited
        result.passes = passes
        result.duration_ms = int(duration_s * 1000)
        events = len(result.would_expire) if result.dry_run else progress.expired
        endpoints, note = self.endpoints
        result.side_effects = side_effects(events, endpoints, self._recovered, note)
        return result
