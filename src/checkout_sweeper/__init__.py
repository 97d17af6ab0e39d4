"""checkout-sweeper: expire every open Stripe Checkout Session of an account, safely."""

__version__ = "0.1.0"
