"""What a ceiling on the pool cost: said when SWEEPER_CONCURRENCY, not the budget, set the pace."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from checkout_sweeper.engine.headroom import PoolReading, concurrency_hint

from memory_gateway import MemoryGateway, sweep_in_memory


def _reading(**changes: float) -> PoolReading:
    """8 in flight all along at 500 ms for 60 s: 16 a second of a budget of 25."""
    fields: dict[str, Any] = {
        "concurrency": 8,
        "most_threads": 8,
        "requests": 960,
        "waiting_s": 480.0,
        "elapsed_s": 60.0,
        "budget_rps": 25.0,
    }
    return PoolReading(**{**fields, **changes})


def test_a_full_pool_at_its_ceiling_under_the_budget_says_what_the_ceiling_cost():
    hint = concurrency_hint(_reading())
    assert hint is not None
    assert "SWEEPER_CONCURRENCY=8 cost this sweep 36% of its budget" in hint
    assert "500 ms" in hint and "16.0 requests a second of 25" in hint
    assert (
        "SWEEPER_CONCURRENCY=17 (sweep --concurrency 17), or auto" in hint
    )  # 25 a second x 0.5 s x 1.25, plus one


@pytest.mark.parametrize(
    "changes",
    [
        {"budget_rps": 17.0},  # the budget set the pace: 16 of 17
        {"waiting_s": 240.0, "requests": 480},  # half the pool idle: backoff, not the pool
        {"requests": 40, "waiting_s": 20.0, "elapsed_s": 2.5},  # too short to say
        {"concurrency": None},  # auto: no ceiling to blame
        {"most_threads": 6},  # the pool never grew to its ceiling
    ],
)
def test_no_hint_when_the_pool_was_not_what_held_the_sweep_back(changes):
    assert concurrency_hint(_reading(**changes)) is None


def test_a_sweep_held_back_by_its_pool_says_so_in_the_log(caplog):
    gateway = MemoryGateway(open_=80)
    gateway.expire_delay_s = 0.02  # 2 in flight make 100 a second at most
    with caplog.at_level(logging.WARNING, logger="checkout_sweeper.engine"):
        result, _ = sweep_in_memory(gateway, concurrency=2, max_rps=1000)
    assert result.expired_count == 80
    assert "SWEEPER_CONCURRENCY" in caplog.text


def test_a_sweep_paced_by_its_budget_gives_no_hint(caplog):
    gateway = MemoryGateway(open_=80)
    gateway.expire_delay_s = 0.02
    with caplog.at_level(logging.WARNING, logger="checkout_sweeper.engine"):
        result, _ = sweep_in_memory(gateway, concurrency=8, max_rps=100)  # 400 possible
    assert result.expired_count == 80
    assert "SWEEPER_CONCURRENCY" not in caplog.text
