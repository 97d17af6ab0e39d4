"""The list walker: held cursors, restarts when a cursor goes stale, and when to give up."""

from __future__ import annotations

import pytest

from checkout_sweeper.engine.gateway import SessionPage
from checkout_sweeper.engine.walker import MAX_RESTARTS_PER_PASS
from checkout_sweeper.errors import FatalStripeError, StaleCursor, SweepAborted

from memory_gateway import MemoryGateway, sweep_in_memory


def test_every_page_is_walked_and_every_open_session_expired_once():
    gateway = MemoryGateway(open_=25, closed=5)
    result, outcomes = sweep_in_memory(gateway, page_size=4)
    assert result.expired_count == 25 and result.remaining_open_count == 0
    assert sorted(o.session_id for o in outcomes) == sorted(set(o.session_id for o in outcomes))
    assert gateway.calls["expire"] == 25  # closed sessions are never touched


def test_the_cursor_session_is_not_expired_before_the_next_page_is_fetched():
    gateway = MemoryGateway(open_=30)
    sweep_in_memory(gateway, page_size=5, concurrency=4)
    cursors = [cursor for kind, cursor in gateway.events if kind == "list" and cursor]
    assert cursors, "several pages were listed"
    for cursor in cursors:
        listed_at = gateway.events.index(("list", cursor))
        assert ("expire", cursor) not in gateway.events[:listed_at]


def test_a_cursor_paid_for_meanwhile_restarts_from_the_head_and_is_reported_closed():
    gateway = MemoryGateway(open_=12)
    paid: list[str] = []

    def customer_pays_the_cursor(page: SessionPage) -> None:
        if not paid and page.has_more:
            paid.append(page.sessions[-1]["id"])
            gateway.status[paid[0]] = "complete"

    gateway.after_list = customer_pays_the_cursor
    result, outcomes = sweep_in_memory(gateway, page_size=5)
    assert result.failed == [] and result.expired_count == 11
    assert [o.session_id for o in outcomes if o.outcome == "already_closed"] == paid
    assert gateway.open_ids() == []


def test_a_dry_run_restart_lists_each_session_once():
    gateway = MemoryGateway(open_=12)
    calls = {"n": 0}

    def stale_once(page: SessionPage) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            gateway.fail_list(StaleCursor("cursor no longer open"))

    gateway.after_list = stale_once
    result, _ = sweep_in_memory(gateway, page_size=5, dry_run=True)
    assert sorted(result.would_expire) == sorted(gateway.open_ids())
    assert result.remaining_open_count == 12 and gateway.calls["expire"] == 0


def test_a_stripe_that_refuses_every_cursor_stops_instead_of_looping():
    gateway = MemoryGateway(open_=12)
    gateway.after_list = lambda page: gateway.fail_list(StaleCursor("Bad cursor."))
    with pytest.raises(SweepAborted, match="Bad cursor"):
        sweep_in_memory(gateway, page_size=5, dry_run=True)
    # each restart is one listing from the head and one refused cursor
    assert gateway.calls["list"] == 2 * (MAX_RESTARTS_PER_PASS + 1)


def test_a_listing_that_fails_for_good_aborts_the_sweep():
    gateway = MemoryGateway(open_=3)
    gateway.fail_list(FatalStripeError("Stripe 401 error: Invalid API Key provided"))
    with pytest.raises(SweepAborted, match="Invalid API Key"):
        sweep_in_memory(gateway)
    assert gateway.calls["expire"] == 0


def test_an_empty_page_that_says_has_more_does_not_end_the_listing():
    gateway = MemoryGateway(open_=12)
    gateway.empty_pages = 2
    result, _ = sweep_in_memory(gateway, page_size=5, dry_run=True)
    assert result.remaining_open_count == 12
    gateway.empty_pages = 3
    result, _ = sweep_in_memory(gateway, page_size=5)
    assert result.expired_count == 12 and result.remaining_open_count == 0
