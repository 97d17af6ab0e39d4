"""The list walker: one pass over Stripe's ``status=open`` listing, from the head.

The listing is a live view: a ``starting_after`` cursor that has since been expired is a 404.
So the last session of each page is held back (not handed on) until the next page has been
fetched with it as the cursor. If the cursor still goes stale (a customer paid that session),
the walker hands the held session on anyway (Stripe's answer to the expire says whether it
closed on its own), lets in-flight work finish and restarts from the head, which then holds only
sessions not handled yet.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from checkout_sweeper.engine.gateway import NO_FILTERS, Gateway, SessionPage
from checkout_sweeper.engine.retry import PacedCalls
from checkout_sweeper.engine.scope import EVERYTHING, Scope
from checkout_sweeper.engine.side_effects import recovery_enabled
from checkout_sweeper.engine.stop import StopSignal
from checkout_sweeper.errors import FatalStripeError, StaleCursor, StripeProblem, SweepStopped
from checkout_sweeper.vocabulary import JsonObject

REMAINING_CAP = 100  # full session objects kept in an answer; the count beside them is exact
MAX_RESTARTS_PER_PASS = 50  # a Stripe that refuses every cursor must not loop a dry run forever
MAX_EMPTY_PAGES = 50  # empty pages that still say ``has_more``, in a row, before giving up
EMPTY_PAGES = f"Stripe answered {MAX_EMPTY_PAGES} empty pages in a row that said has_more"


class SessionSink(Protocol):
    """Where the walker sends the sessions it finds (the sweeper)."""

    def is_new(self, session_id: str) -> bool: ...

    def handled(self, session_id: str) -> bool: ...

    def dispatch(self, session_id: str) -> None: ...

    def forget(self, session_id: str) -> None: ...

    def recovery_enabled(self, session_id: str) -> None: ...

    def drain(self) -> None: ...


@dataclass
class PassListing:
    """What one pass found: how many sessions it handed on, which stay open, and how many
    open sessions it saw that are out of the sweep's scope."""

    dispatched: int = 0
    count: int = 0
    sample: list[JsonObject] = field(default_factory=list)
    out_of_scope: int = 0
    pending: list[JsonObject] = field(default_factory=list)  # listed while in flight or done

    def still_open(self, session: JsonObject, cap: int) -> None:
        self.count += 1
        if len(self.sample) < cap:
            self.sample.append(session)

    def restart(self) -> None:
        """Listing starts again from the head, so what stays open will be seen again."""
        self.count = 0
        self.out_of_scope = 0
        self.sample.clear()
        self.pending.clear()

    def settle(self, failed: Callable[[str], bool], cap: int) -> None:
        """Once nothing is in flight: of the sessions listed while their expire was in
        flight (or had just ended), those whose expire failed are still open."""
        for session in self.pending:
            if failed(session["id"]):
                self.still_open(session, cap)
        self.pending.clear()


@dataclass(frozen=True)
class WalkOptions:
    page_size: int = 100
    scope: Scope = EVERYTHING
    dry_run: bool = False
    remaining_cap: int = REMAINING_CAP


class ListWalker:
    """Walks the open list once per ``walk()``; stops early when the stop signal is set."""

    def __init__(
        self,
        gateway: Gateway,
        calls: PacedCalls,
        stop: StopSignal,
        sink: SessionSink,
        options: WalkOptions,
    ) -> None:
        self._gateway = gateway
        self._calls = calls
        self._stop = stop
        self._sink = sink
        self._options = options
        self._handed = 0  # over every pass: what ``limit`` caps
        self._filters = options.scope.list_filters()

    @property
    def limit_reached(self) -> bool:
        limit = self._options.scope.limit
        return limit is not None and self._handed >= limit

    def walk(self, *, verify_only: bool = False, whole_account: bool = False) -> PassListing:
        """One pass from the head, handing on sessions not handled yet (none if verifying);
        ``whole_account`` lists without Stripe-side filters, to count what is out of scope."""
        self._filters = NO_FILTERS if whole_account else self._options.scope.list_filters()
        listing = PassListing()
        cursor: str | None = None
        held: str | None = None
        restarts = empty = 0
        while not self._stop.stopped:
            try:
                page = self._calls.call(functools.partial(self._fetch, cursor), ahead=True)
            except StaleCursor as stale:
                restarts += 1
                if restarts > MAX_RESTARTS_PER_PASS:
                    self._stop.abort(stale)
                    break
                self._restart(held, listing)
                cursor = held = None
                continue
            except SweepStopped:
                break
            except StripeProblem as problem:
                self._stop.abort(problem)
                break
            if held is not None:
                self._sink.dispatch(held)
                held = None
            if page.has_more and not page.sessions:  # not the end: ask again from the cursor
                empty += 1
                if empty > MAX_EMPTY_PAGES:
                    self._stop.abort(FatalStripeError(EMPTY_PAGES))
                    break
                continue
            empty = 0
            cursor, held = self._take(page, listing, verify_only)
            if cursor is None:
                break
        return listing

    def _fetch(self, cursor: str | None) -> SessionPage:
        return self._gateway.list_open(
            limit=self._options.page_size,
            starting_after=cursor,
            filters=self._filters,
        )

    def _restart(self, held: str | None, listing: PassListing) -> None:
        """The cursor went stale: settle the held session, let work finish, start over."""
        if held is not None:
            if self._options.dry_run:
                self._sink.forget(held)  # listed again from the head if it is still open
            else:
                self._sink.dispatch(held)
        self._sink.drain()
        listing.restart()

    def _take(
        self, page: SessionPage, listing: PassListing, verify_only: bool
    ) -> tuple[str | None, str | None]:
        """Hand on the page's new sessions; return the next cursor and the session held back."""
        options = self._options
        fresh = []
        for session in page.sessions:
            if not options.scope.matches(session):
                listing.out_of_scope += 1
                continue
            if not options.dry_run and self._sink.handled(session["id"]):
                listing.pending.append(session)  # its expire says whether it stays open
                continue
            new = not verify_only and not self.limit_reached and self._sink.is_new(session["id"])
            if new:
                fresh.append(session["id"])
                self._handed += 1
                if recovery_enabled(session):
                    self._sink.recovery_enabled(session["id"])
            if not new or options.dry_run:  # a dry run leaves every session open
                listing.still_open(session, options.remaining_cap)
        cursor = page.sessions[-1]["id"] if page.has_more and page.sessions else None
        held = fresh.pop() if cursor is not None and fresh and fresh[-1] == cursor else None
        for session_id in fresh:
            self._sink.dispatch(session_id)
        listing.dispatched += len(fresh) + (1 if held else 0)
        return cursor, held
