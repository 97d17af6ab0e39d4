"""An in-memory ``Gateway`` for engine tests: Stripe's list and expire rules without HTTP.

Deterministic and fast: faults are scripted per call instead of drawn at random, and hooks let a
test act between calls (a customer pays, a session appears), so each engine rule can be shown
alone. The SDK-over-HTTP tests against the fake Stripe stay as the end-to-end check.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from checkout_sweeper.engine.gateway import ListFilters, SessionPage
from checkout_sweeper.engine.sweeper import SessionOutcome, Sweeper, SweepOptions, SweepResult
from checkout_sweeper.errors import RetryableError, SessionNotOpen, StaleCursor, StripeProblem


class MemoryGateway:
    """Sessions newest first; ``fail_expire``/``fail_list`` queue errors for coming calls."""

    livemode = False
    account = "test:memory"

    def __init__(self, open_: int = 0, *, closed: int = 0) -> None:
        self._lock = threading.Lock()
        self._order: list[str] = []  # oldest first; listing walks it backwards
        self.status: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.expire_keys: dict[str, set[str]] = {}
        self._done_keys: set[str] = set()  # keys of expires that succeeded
        self._expire_faults: dict[str, deque[StripeProblem]] = {}
        self._list_faults: deque[StripeProblem] = deque()
        self._lost: set[str] = set()
        self.events: list[tuple[str, str | None]] = []  # ("list", cursor) / ("expire", id)
        self.after_list: Callable[[SessionPage], object] | None = None
        self.expire_delay_s = 0.0  # how long Stripe takes to answer an expire
        self.list_delay_s = 0.0  # and a page of the list
        self.status_delay_s = 0.0  # and a session's status
        self.empty_pages = 0  # pages to come that are empty and yet say has_more
        self.endpoints: list[dict[str, Any]] = []  # webhook endpoints, as Stripe shows them
        self.endpoints_refused: StripeProblem | None = None  # a key that may not read them
        self.fields: dict[str, dict[str, Any]] = {}  # customer, payment_link, metadata, created
        for _ in range(closed):
            self.add("complete")
        for _ in range(open_):
            self.add()

    def add(self, status: str = "open", **fields: Any) -> str:
        with self._lock:
            session_id = f"cs_test_{len(self._order):06d}"
            self._order.append(session_id)
            self.status[session_id] = status
            self.fields[session_id] = fields
            return session_id

    def _listed(self, session_id: str, filters: ListFilters) -> bool:
        """Open and within what Stripe's list filters on (metadata is not one of them)."""
        fields = self.fields[session_id]
        if self.status[session_id] != "open":
            return False
        before = filters.created_before
        if before is not None and fields.get("created", 0) >= before:
            return False
        return all(
            wanted is None or fields.get(name) == wanted
            for name, wanted in (
                ("customer", filters.customer),
                ("payment_link", filters.payment_link),
            )
        )

    def fail_expire(self, session_id: str, *problems: StripeProblem) -> None:
        self._expire_faults.setdefault(session_id, deque()).extend(problems)

    def lose_answer(self, session_id: str) -> None:
        """The next expire of ``session_id`` acts, then its answer is lost (a retryable 500)."""
        self._lost.add(session_id)

    def fail_list(self, *problems: StripeProblem) -> None:
        self._list_faults.extend(problems)

    def open_ids(self) -> list[str]:
        return [s for s in reversed(self._order) if self.status[s] == "open"]

    # the Gateway protocol ---------------------------------------------------------------------
    def list_open(
        self, *, limit: int, starting_after: str | None, filters: ListFilters
    ) -> SessionPage:
        if self.list_delay_s:
            time.sleep(self.list_delay_s)
        with self._lock:
            self.calls["list"] += 1
            self.events.append(("list", starting_after))
            if self._list_faults:
                raise self._list_faults.popleft()
            if self.empty_pages:
                self.empty_pages -= 1
                return SessionPage([], True)
            newest_first = list(reversed(self._order))
            if starting_after is not None:
                if self.status.get(starting_after) != "open":
                    raise StaleCursor(f"No such checkout.session: '{starting_after}'")
                newest_first = newest_first[newest_first.index(starting_after) + 1 :]
            matching = [s for s in newest_first if self._listed(s, filters)]
            sessions = [{**_session(s), **self.fields[s]} for s in matching[:limit]]
            page = SessionPage(sessions, len(matching) > limit)
        if self.after_list is not None:
            self.after_list(page)
        return page

    def expire(self, session_id: str, idempotency_key: str) -> None:
        if self.expire_delay_s:
            time.sleep(self.expire_delay_s)
        with self._lock:
            self.calls["expire"] += 1
            self.events.append(("expire", session_id))
            if idempotency_key in self._done_keys:  # Stripe replays the answer it saved
                return
            self.expire_keys.setdefault(session_id, set()).add(idempotency_key)
            queued = self._expire_faults.get(session_id)
            if queued:
                raise queued.popleft()
            if self.status[session_id] != "open":
                raise SessionNotOpen(self.status[session_id])
            self.status[session_id] = "expired"
            self._done_keys.add(idempotency_key)
            if session_id in self._lost:
                self._lost.discard(session_id)
                raise RetryableError("Stripe 500 error: answer lost")

    def webhook_endpoints(self) -> list[dict[str, Any]]:
        with self._lock:
            self.calls["webhook_endpoints"] += 1
            if self.endpoints_refused is not None:
                raise self.endpoints_refused
            return list(self.endpoints)

    def session_status(self, session_id: str) -> str:
        if self.status_delay_s:
            time.sleep(self.status_delay_s)
        with self._lock:
            self.calls["retrieve"] += 1
            return self.status[session_id]


def _session(session_id: str) -> dict[str, Any]:
    return {"id": session_id, "object": "checkout.session", "status": "open"}


INSTANT: dict[str, Any] = {"max_rps": 1e6, "backoff_base_s": 0.0, "backoff_cap_s": 0.0}


def sweep_in_memory(
    gateway: MemoryGateway, **options: Any
) -> tuple[SweepResult, list[SessionOutcome]]:
    """Run one sweep against ``gateway`` with no pacing delay; return result and outcomes."""
    outcomes: list[SessionOutcome] = []
    sweeper = Sweeper(
        gateway,
        SweepOptions(**{**INSTANT, **options}),
        on_outcome=outcomes.append,
        sleep=lambda seconds: None,
    )
    return sweeper.run(), outcomes
