"""Scopes in the engine: one parser for every door, Stripe-side and client-side filters, the
limit, and the count of what was left alone."""

from __future__ import annotations

import pytest

from checkout_sweeper.engine.scope import Scope, parse_scope
from checkout_sweeper.errors import ScopeInvalid

from memory_gateway import MemoryGateway, sweep_in_memory


def test_a_bad_scope_names_every_bad_field_at_once():
    with pytest.raises(ScopeInvalid) as caught:
        parse_scope(
            {
                "older_than": "soon",
                "customer": "alice",
                "payment_link": "cus_1",
                "metadata": {"": "x"},
                "limit": 0,
                "colour": "red",
            }
        )
    problems = caught.value.problems
    assert set(problems) == {
        "older_than",
        "customer",
        "payment_link",
        "metadata",
        "limit",
        "colour",
    }
    assert "cus_" in problems["customer"] and "plink_" in problems["payment_link"]
    assert "unknown field" in problems["colour"]


@pytest.mark.parametrize(
    "bad",
    [
        {"limit": True},
        {"limit": "5"},
        {"created_before": -1},
        {"created_before": 1e300},
        {"created_before": 1_000},  # 1970: before any session
        {"created_before": 5_000_000_000},  # 2128
        {"limit": 1e300},
        {"limit": float("inf")},
        {"older_than": "99999999999999999w"},
        {"older_than": "31d"},
        {"older_than": "2d"},
        {"older_than": "25h"},
        {"metadata": ["k=v"]},
        {"metadata": {"k": 1}},
        {"older_than": "0s"},
    ],
)
def test_values_of_the_wrong_kind_are_refused(bad):
    with pytest.raises(ScopeInvalid):
        parse_scope(bad)


def test_bounds_are_named_in_the_message():
    with pytest.raises(ScopeInvalid) as caught:
        parse_scope({"older_than": "5w", "created_before": 1e300, "limit": 10**7})
    problems = caught.value.problems
    assert "from 1s to 24h" in problems["older_than"] and "'5w'" in problems["older_than"]
    assert "sessions live at most 24 hours" in problems["older_than"]
    assert "946684800 (2000-01-01)" in problems["created_before"]
    for malformed in ("0s", "-5m", "x", 5):  # not a duration: no word of the lifetime
        with pytest.raises(ScopeInvalid) as caught:
            parse_scope({"older_than": malformed})
        said = caught.value.problems["older_than"]
        assert said.startswith("expected a duration from 1s to 24h") and "24 hours" not in said
    assert "4102444800 (2100-01-01)" in problems["created_before"]
    assert "from 1 to 1,000,000" in problems["limit"]
    bounds = parse_scope({"older_than": "24h", "created_before": 4_102_444_800, "limit": 10**6})
    assert bounds.limit == 10**6


def test_a_good_scope_reads_as_written():
    scope = parse_scope(
        {"older_than": "2h", "customer": "cus_A1", "metadata": {"b": "2", "a": "1"}, "limit": 5}
    )
    assert scope.older_than == "2h" and scope.customer == "cus_A1" and scope.limit == 5
    assert scope.metadata == (("a", "1"), ("b", "2"))
    assert not scope.everything and Scope(limit=3).everything


def test_older_than_becomes_one_cutoff_that_a_later_resolve_keeps():
    scope = parse_scope({"older_than": "30m"}).resolved(10_000)
    assert scope.created_before == 10_000 - 1800
    assert scope.resolved(20_000).created_before == 10_000 - 1800
    now = 1_700_010_000
    both = parse_scope({"older_than": "30m", "created_before": now - 5_000}).resolved(now)
    assert both.created_before == now - 5_000


def test_metadata_is_matched_on_each_listed_session_and_the_rest_is_counted_out_of_scope():
    gateway = MemoryGateway()
    tagged = {gateway.add(metadata={"run": "ci-7", "x": "1"}) for _ in range(4)}
    for _ in range(3):
        gateway.add(metadata={"run": "ci-8"})
    gateway.add()
    result, _ = sweep_in_memory(gateway, scope=Scope(metadata=(("run", "ci-7"),)), page_size=3)
    assert result.expired_count == 4 and not tagged & set(gateway.open_ids())
    assert len(gateway.open_ids()) == 4
    assert result.remaining_open_count == 0 and result.out_of_scope_open_count == 4
    assert result.succeeded and result.scope["metadata"] == {"run": "ci-7"}


def test_customer_and_payment_link_together_are_asked_of_stripe():
    gateway = MemoryGateway()
    wanted = gateway.add(customer="cus_A", payment_link="plink_1")
    gateway.add(customer="cus_A")
    gateway.add(customer="cus_B", payment_link="plink_1")
    result, _ = sweep_in_memory(gateway, scope=Scope(customer="cus_A", payment_link="plink_1"))
    assert result.expired_count == 1 and wanted not in gateway.open_ids()
    assert result.out_of_scope_open_count == 2


def test_a_limit_expires_the_newest_first_and_stops_there_successfully():
    gateway = MemoryGateway(open_=10)
    newest = gateway.open_ids()[:4]
    result, _ = sweep_in_memory(gateway, scope=Scope(limit=4), page_size=3)
    assert result.expired_count == 4 and not set(newest) & set(gateway.open_ids())
    assert result.limit_reached and result.remaining_open_count == 6
    assert result.out_of_scope_open_count == 0 and result.succeeded


def test_a_dry_run_with_a_limit_names_only_that_many():
    gateway = MemoryGateway(open_=10)
    result, _ = sweep_in_memory(gateway, scope=Scope(limit=4), dry_run=True, page_size=3)
    assert result.would_expire == gateway.open_ids()[:4] and len(gateway.open_ids()) == 10


def test_a_sweep_of_everything_has_nothing_out_of_scope_and_shows_no_scope():
    result, _ = sweep_in_memory(MemoryGateway(open_=3))
    assert result.out_of_scope_open_count == 0 and result.scope == {}


def test_a_created_before_more_than_a_day_ago_is_refused_at_the_door_only():
    now = 1_800_000_000
    with pytest.raises(ScopeInvalid) as caught:
        parse_scope({"created_before": now - 86_401}, now=now)
    assert "sessions live at most 24 hours" in caught.value.problems["created_before"]
    assert parse_scope({"created_before": now - 86_400}, now=now).created_before == now - 86_400
    # read back later (a stored schedule, a queued run): no clock, no refusal
    assert parse_scope({"created_before": now - 10 * 86_400}).created_before == now - 10 * 86_400
