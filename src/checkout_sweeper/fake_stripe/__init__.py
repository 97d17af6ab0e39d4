"""A stateful local fake of Stripe's Checkout Sessions API, for tests, benchmarks and demos."""

from checkout_sweeper.fake_stripe.faults import Faults
from checkout_sweeper.fake_stripe.server import FakeStripeApp, FakeStripeServer
from checkout_sweeper.fake_stripe.state import FakeStripeState

__all__ = ["FakeStripeApp", "FakeStripeServer", "FakeStripeState", "Faults"]
