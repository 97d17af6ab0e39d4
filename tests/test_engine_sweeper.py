"""The sweeper's passes: sessions created meanwhile, the pass limit, what is reported open."""

from __future__ import annotations

import pytest

from checkout_sweeper.engine.gateway import SessionPage
from checkout_sweeper.engine.scope import Scope
from checkout_sweeper.engine.sweeper import SweepOptions

from memory_gateway import MemoryGateway, sweep_in_memory


def test_sessions_created_during_the_sweep_are_caught_by_a_later_pass():
    gateway = MemoryGateway(open_=10)
    created: list[str] = []

    def customers_arrive(page: SessionPage) -> None:
        if len(created) < 3:
            created.append(gateway.add())

    gateway.after_list = customers_arrive
    result, _ = sweep_in_memory(gateway, page_size=4)
    assert result.passes >= 2 and result.expired_count == 10 + len(created)
    assert gateway.open_ids() == [] and result.succeeded


def test_out_of_passes_the_verification_listing_reports_what_is_still_open():
    gateway = MemoryGateway(open_=2)
    gateway.after_list = lambda page: gateway.add()  # a new session after every listing
    result, _ = sweep_in_memory(gateway, max_passes=3)
    assert result.passes == 3
    assert result.remaining_open_count == len(gateway.open_ids()) - 1  # one came after it
    assert not result.succeeded


def test_remaining_sessions_are_capped_but_counted_exactly():
    gateway = MemoryGateway(open_=30)
    result, _ = sweep_in_memory(gateway, dry_run=True, remaining_cap=10, page_size=7)
    assert result.remaining_open_count == 30 and len(result.remaining_open_sessions) == 10
    assert len(result.would_expire) == 30 and result.succeeded


def test_a_scope_is_asked_of_every_listing_then_the_last_one_counts_the_whole_account():
    seen: list[int | None] = []
    gateway = MemoryGateway(open_=5)
    original = gateway.list_open

    def spy(**kwargs):
        seen.append(kwargs["filters"].created_before)
        return original(**kwargs)

    gateway.list_open = spy  # type: ignore[method-assign]
    sweep_in_memory(gateway, scope=Scope(created_before=1_700_000_000), page_size=2)
    assert len(seen) > 2 and set(seen[:-1]) == {1_700_000_000} and seen[-1] is None


@pytest.mark.parametrize(
    ("max_rps", "reserve", "livemode", "ceiling"),
    [
        (20.0, None, False, 20),  # the default in a sandbox: the budget
        (None, None, False, 25),  # auto in a sandbox: the documented limit
        (None, None, True, 50),  # auto live: half of 100 stays for customers' payments
        (90.0, None, True, 50),  # a live budget is held to what the reserve leaves
        (None, 0.0, True, 100),  # a live account nothing else uses
        (None, 0.2, False, 20),
        (60.0, None, False, 60),  # a sandbox budget over the limit (the bucket learns it)
    ],
)
def test_the_reserve_leaves_a_share_of_the_documented_limit(max_rps, reserve, livemode, ceiling):
    options = SweepOptions(max_rps=max_rps, reserve=reserve)
    assert options.ceiling(livemode) == pytest.approx(ceiling)
