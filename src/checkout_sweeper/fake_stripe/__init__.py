"""A stateful local fake of Stripe's Checkout Sessions API, for tests, benchmarks and demos."""

from .server import FakeStripeApp, FakeStripeServer
from .state import FakeStripeState, Faults

__all__ = ["FakeStripeApp", "FakeStripeServer", "FakeStripeState", "Faults"]
