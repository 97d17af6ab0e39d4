"""Who is calling, for every authenticated route: the Bearer token's user, or the answer that
says why not (401, 400, 404)."""

from __future__ import annotations

from flask import g, has_request_context, request

from checkout_sweeper.errors import NotFound
from checkout_sweeper.runs.checks import Caller, Services, api_caller
from checkout_sweeper.store.models import User
from checkout_sweeper.store.users import find_user
from checkout_sweeper.tokens import bearer_token, user_id_from, verify
from checkout_sweeper.web.state import app_state


def authenticated_user_id() -> int | None:
    """The row id the token names (None: no row can have it); 401/400 otherwise."""
    state = app_state()
    token = bearer_token(request.headers.get("Authorization"))
    claims = verify(token, state.settings.jwt)
    return user_id_from(claims, state.settings.jwt.user_id_claim)


def load_user(user_id: int | None) -> User:
    user = find_user(app_state().db, user_id) if user_id is not None else None
    if user is None:
        raise NotFound("User not found.")
    return user


def caller() -> User:
    """The user the request's token names; ``g.user_id`` is set for the request log."""
    g.user_id = authenticated_user_id()
    user = load_user(g.user_id)
    g.user_id = user.id
    return user


def as_submitter(user: User) -> Caller:
    """The user as ``runs`` knows a caller: their quota, and the spec's customer rule."""
    return api_caller(user.id, user.stripe_customer_id)


def services() -> Services:
    """What starting a sweep needs, as this app holds it."""
    state = app_state()
    return Services(state.settings, state.db, state.broker, state.limiter.limiter)


def quota_seen(headers: dict[str, str]) -> None:
    """The quota's headers for the answer, when there is a request to answer (a sweep in the
    background spends its quota after its request has gone)."""
    if has_request_context():
        g.quota_headers = headers
