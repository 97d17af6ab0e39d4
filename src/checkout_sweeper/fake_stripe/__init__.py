"""A stateful local fake of Stripe's Checkout Sessions API, for tests, benchmarks and demos."""

from .faults import Faults
from .server import FakeStripeApp, FakeStripeServer
from .state import FakeStripeState

__all__ = ["FakeStripeApp", "FakeStripeServer", "FakeStripeState", "Faults"]
