"""Per-user limits through Flask-Limiter, failing closed: 429 when spent, 503 (with
``Retry-After``) when the limiter's storage cannot be reached, so a destructive endpoint never
runs without its limiter."""

from __future__ import annotations

import logging

from flask_limiter.errors import RateLimitExceeded

from checkout_sweeper.errors import QuotaUnavailable
from checkout_sweeper.web.state import app_state

log = logging.getLogger("checkout_sweeper.api")
SWEEPS_PER_HOUR = 3  # the spec's per-user quota on the endpoint
READS_PER_MINUTE = 120  # reads of a user's sweeps, apart from the sweep quota


def sweep_rate_limit() -> str:
    """The endpoint's quota in Flask-Limiter's notation."""
    return f"{SWEEPS_PER_HOUR} per hour"


def reads_rate_limit() -> str:
    return f"{READS_PER_MINUTE} per minute"


def spend(limit: str, key: str) -> None:
    """Count one call against ``limit`` for ``key`` (a user's row id, never the claim text)."""
    try:
        with app_state().limiter.limit(limit, key_func=lambda: key):
            pass
    except RateLimitExceeded:
        raise
    except Exception as err:
        log.error("rate-limit storage unavailable: %s", type(err).__name__)
        raise QuotaUnavailable(
            "Rate limiting is unavailable (its storage cannot be reached), so no sweep is "
            "started; try again shortly."
        ) from None
