"""Sessions that look like a shop's: some of a known customer, some from a payment link, each
with metadata, so scoped sweeps have something to choose from. The ids are fixed, so a person
trying a scope can type them."""

from __future__ import annotations

import random

from checkout_sweeper.fake_stripe.objects import StripeObject

CUSTOMERS = ("cus_QxAlice00000001", "cus_QxBob000000002", "cus_QxCarol0000003")
PAYMENT_LINKS = ("plink_1QxSpringSale01", "plink_1QxWinterSale02")
CHANNELS = ("web", "mobile", "ci")
CUSTOMER_SHARE = 0.4  # Checkout with a known customer (subscriptions, returning buyers)
LINK_SHARE = 0.3  # sessions a payment link created


def varied_params(rng: random.Random, number: int) -> StripeObject:
    """Create parameters for the ``number``-th seeded session."""
    params: StripeObject = {
        "metadata": {"cart_id": f"cart_{number:06d}", "channel": rng.choice(CHANNELS)}
    }
    if rng.random() < CUSTOMER_SHARE:
        params["customer"] = rng.choice(CUSTOMERS)
    if rng.random() < LINK_SHARE:
        params["payment_link"] = rng.choice(PAYMENT_LINKS)
    return params


def described() -> str:
    """One line for the fake's start-up banner."""
    return (
        f"customers {', '.join(CUSTOMERS)}; payment links {', '.join(PAYMENT_LINKS)}; "
        f"metadata channel={'|'.join(CHANNELS)}"
    )
