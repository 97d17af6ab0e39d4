"""The ``v1`` blueprint: ``GET /v1/active_checkout_sessions_and_expire_all``.

The view runs the checks of the product contract in their fixed order (auth, claims, query,
user, customer, rate limit, live mode, concurrent sweep) and hands the sweep itself to
``service.run_recorded_sweep``. Every check answers with its own status and message.
"""

from __future__ import annotations

import logging

from flask import Blueprint, g, request
from flask.typing import ResponseReturnValue
from flask_limiter.errors import RateLimitExceeded

from .. import defaults
from ..auth import bearer_token, user_id_from, verify
from ..configured import configured_sweep, refuse_early
from ..errors import AuditError, AuthError, LiveModeRefused, SweepAborted, SweepInProgress
from ..models import User
from ..responses import UNEXPECTED, ApiError, success
from ..users import find_user
from .state import app_state

bp = Blueprint("v1", __name__)
log = logging.getLogger("checkout_sweeper.api")


def _authenticated_user_id() -> int | None:
    """The row id the token names (None: no row can have it); 401/400 otherwise."""
    state = app_state()
    try:
        token = bearer_token(request.headers.get("Authorization"))
        claims = verify(token, state.settings.jwt)
        return user_id_from(claims, state.settings.jwt.user_id_claim)
    except AuthError as err:
        headers = (
            {"WWW-Authenticate": 'Bearer realm="checkout-sweeper"'} if err.status == 401 else {}
        )
        raise ApiError(err.status, err.message, headers) from None


def _load_user(user_id: int | None) -> User:
    user = find_user(app_state().db, user_id) if user_id is not None else None
    if user is None:
        raise ApiError(404, "User not found.")
    return user


def _spend_quota(user_id: int) -> None:
    """Count this call against the user's hourly quota, keyed on the row id (so no other
    spelling of the id escapes it): 429 when spent, 503 if the storage is down.

    Failing closed is deliberate: without its limiter a destructive endpoint must not run.
    """
    try:
        with app_state().limiter.limit(
            defaults.sweep_rate_limit(), key_func=lambda: f"user:{user_id}"
        ):
            pass
    except RateLimitExceeded:
        raise
    except Exception as err:
        log.error("rate-limit storage unavailable: %s", type(err).__name__)
        raise ApiError(
            503,
            "Rate limiting is unavailable (its storage cannot be reached), so no sweep is "
            "started; try again shortly.",
            {"Retry-After": "30"},
        ) from None


BUSY = "A sweep of this Stripe account is already running; try again when it ends."


@bp.get("/active_checkout_sessions_and_expire_all")
def active_checkout_sessions_and_expire_all() -> ResponseReturnValue:
    """Expire every open Checkout Session of the account; answer with what is left open.

    The checks run in the contract's order; those that depend only on the server's state
    (live-mode key, a sweep running) come before the quota, so they never spend it.
    """
    state = app_state()
    g.user_id = _authenticated_user_id()
    if request.args:
        names = ", ".join(sorted(request.args))
        raise ApiError(400, f"This endpoint accepts no query parameters; got: {names}.")
    user = _load_user(g.user_id)
    if user.stripe_customer_id:
        raise ApiError(
            409,
            "This user already has a Stripe customer "
            f"({user.stripe_customer_id}); this cleanup endpoint is only for users without one.",
        )
    try:
        refuse_early(state.settings, state.db)
        result = configured_sweep(
            state.settings,
            state.db,
            trigger="api",
            user_id=user.id,
            once_leased=lambda: _spend_quota(user.id),  # a 409 for a running sweep spends none
        )
    except LiveModeRefused as refusal:
        raise ApiError(403, str(refusal)) from None
    except SweepInProgress:
        raise ApiError(409, BUSY) from None
    except (SweepAborted, AuditError) as err:
        log.error("sweep did not complete: %s", err)
        raise ApiError(500, UNEXPECTED) from None
    g.sweep_counts = {
        "sweep_id": result.sweep_id,
        "expired": result.expired_count,
        "already_closed": result.already_closed_count,
        "failed": len(result.failed),
        "remaining": result.remaining_open_count,
        "succeeded": result.succeeded,
    }
    return success(result.as_data())
