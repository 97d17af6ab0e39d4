"""Shared fixtures: the project's fake Stripe over real HTTP, and SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from checkout_sweeper.fake_stripe import FakeStripeServer

TEST_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
LIVE_KEY = "sk_live_51Habcdefghijklmnop"


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripeServer]:
    """A fresh, empty fake Stripe on a free port, stopped after the test."""
    with FakeStripeServer() as server:
        yield server


@pytest.fixture
def stripe_client(fake_stripe: FakeStripeServer) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": fake_stripe.url})


def make_client(server: FakeStripeServer, key: str = TEST_KEY, **kwargs) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.url}, **kwargs)
