"""Scoped sweeps from the command line, over HTTP against the fake Stripe: exactly the sessions
in scope are expired, the rest stay open, and the answer counts both."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from checkout_sweeper.fake_stripe import FakeStripeServer

from harness import sweeper_env
from helpers import TEST_KEY, Ran, run_command

HOUR = 3600


@pytest.fixture
def sweep(tmp_path, fake_stripe):
    env = sweeper_env(tmp_path, fake_stripe.url, DATABASE_URL=f"sqlite:///{tmp_path / 's.db'}")

    def run(*options: str) -> Ran:
        return run_command(env, "sweep", "--yes", "--json", *options)

    return run


def open_ids(fake_stripe: FakeStripeServer) -> set[str]:
    params: dict[str, str | int] = {"status": "open", "limit": 100}
    answer = requests.get(
        f"{fake_stripe.url}/v1/checkout/sessions",
        params=params,
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=10,
    )
    return {session["id"] for session in answer.json()["data"]}


def in_scope(
    shop: dict[str, dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]
) -> set[str]:
    return {session_id for session_id, fields in shop.items() if predicate(fields)}


SCOPES = [
    (("--older-than", "6h"), lambda f: f["created"] < time.time() - 6 * HOUR),
    (("--customer", "cus_Alice001"), lambda f: f["customer"] == "cus_Alice001"),
    (("--payment-link", "plink_Spring01"), lambda f: f.get("payment_link") == "plink_Spring01"),
    (("--metadata", "run=ci-7"), lambda f: f["metadata"]["run"] == "ci-7"),
    (
        ("--metadata", "run=ci-7", "--metadata", "cart=c4"),
        lambda f: f["metadata"] == {"run": "ci-7", "cart": "c4"},
    ),
    (
        ("--older-than", "3h", "--customer", "cus_Bob00002", "--metadata", "run=ci-8"),
        lambda f: (
            f["created"] < time.time() - 3 * HOUR
            and f["customer"] == "cus_Bob00002"
            and f["metadata"]["run"] == "ci-8"
        ),
    ),
]


@pytest.mark.parametrize(
    ("options", "predicate"), SCOPES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_each_scope_alone_and_combined_expires_exactly_what_is_in_it(
    shop, sweep, fake_stripe, options, predicate
):
    wanted = in_scope(shop, predicate)
    assert 0 < len(wanted) < len(shop)
    ran = sweep(*options)
    assert ran.returncode == 0, ran.stderr
    data = json.loads(ran.stdout)
    assert data["expired_count"] == len(wanted)
    assert open_ids(fake_stripe) == set(shop) - wanted
    assert data["remaining_open_count"] == 0
    assert data["out_of_scope_open_count"] == len(shop) - len(wanted)
    assert data["scope"]["created_before"] is not None or "--older-than" not in options


def test_a_limit_expires_the_newest_in_scope_and_says_it_stopped_there(shop, sweep, fake_stripe):
    ran = sweep("--metadata", "run=ci-7", "--limit", "2")
    assert ran.returncode == 0, ran.stderr
    data = json.loads(ran.stdout)
    tagged = sorted(
        in_scope(shop, lambda f: f["metadata"]["run"] == "ci-7"), key=lambda s: shop[s]["created"]
    )
    assert data["expired_count"] == 2 and data["limit_reached"]
    assert open_ids(fake_stripe) == set(shop) - set(tagged[-2:])
    assert data["remaining_open_count"] == len(tagged) - 2
    assert data["out_of_scope_open_count"] == len(shop) - len(tagged)


def test_a_dry_run_shows_what_the_scope_would_expire(shop, sweep, fake_stripe):
    ran = sweep("--dry-run", "--customer", "cus_Alice001")
    data = json.loads(ran.stdout)
    assert set(data["would_expire"]) == in_scope(shop, lambda f: f["customer"] == "cus_Alice001")
    assert open_ids(fake_stripe) == set(shop)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("--older-than", "soon"), "--older-than"),
        (("--customer", "alice"), "--customer"),
        (("--payment-link", "cus_x"), "--payment-link"),
        (("--metadata", "novalue"), "--metadata"),
        (("--limit", "0"), "--limit"),
    ],
)
def test_a_bad_scope_option_is_exit_2_naming_it_and_expires_nothing(
    shop, sweep, fake_stripe, options, named
):
    ran = sweep(*options)
    assert ran.returncode == 2 and named in ran.stderr
    assert open_ids(fake_stripe) == set(shop)


def test_the_plan_on_a_terminal_names_the_scope():
    from checkout_sweeper.cli.display import scope_text
    from checkout_sweeper.engine.scope import parse_scope

    text = scope_text(parse_scope({"customer": "cus_A", "metadata": {"k": "v"}, "limit": 3}))
    assert text == " of customer cus_A with metadata k=v (at most 3, newest first)"
