"""Defaults shared by more than one layer, each defined here once.

``config.Settings`` reads the environment with these as fallbacks, the engine's
``SweepOptions`` starts from the same numbers, and the docs and the README quote them from here
(a test checks the README against ``config.VARIABLES``).
"""

from __future__ import annotations

MAX_RPS = 20.0  # Stripe requests per second one sweep may use: headroom under the 25/s limit
STRIPE_TEST_LIMIT = 25.0  # Stripe's documented requests per second per account, sandbox
STRIPE_LIVE_LIMIT = 100.0  # and live mode: where SWEEPER_MAX_RPS=auto starts
STRIPE_TIMEOUT_S = 30.0  # a Stripe request with no answer by then is retried
CONCURRENCY = 8  # expire requests in flight at once
LEASE_TTL_S = 30.0  # seconds before a silent sweeper's account lease lapses
AUDIT_GRACE_S = 60.0  # how long a finished sweep waits for an unreachable database
SWEEPS_PER_HOUR = 3  # the spec's per-user quota on the endpoint
JWT_LEEWAY_S = 30  # clock skew allowed on exp, nbf and iat
REMAINING_CAP = 100  # full session objects kept in an answer; the count beside them is exact


def sweep_rate_limit() -> str:
    """The endpoint's quota in Flask-Limiter's notation."""
    return f"{SWEEPS_PER_HOUR} per hour"
