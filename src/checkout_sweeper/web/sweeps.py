"""Sweep resources for the user who started them: ``/v1/sweeps``, ``/v1/sweeps/{id}`` and
``/v1/sweeps/{id}/sessions``. Read from the database (the run row the heartbeat updates), so
any worker or instance answers; another user's sweep is a 404. A separate, generous per-user
limit applies; these reads never spend the sweep quota."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from flask import Blueprint, g, request, url_for
from flask.typing import ResponseReturnValue

from checkout_sweeper.errors import ApiError
from checkout_sweeper.metrics import SWEEPS_CANCELED
from checkout_sweeper.runs.rows import (
    ENDED,
    children_of,
    request_cancel,
    run_of_user,
    run_sessions,
    user_runs,
    wait_while_pending,
)
from checkout_sweeper.vocabulary import Outcome, RunStatus, values
from checkout_sweeper.web.caller import caller
from checkout_sweeper.web.envelopes import success
from checkout_sweeper.web.quota import READS, spend, user_key
from checkout_sweeper.web.state import app_state

bp = Blueprint("sweeps", __name__)
OUTCOMES = values(Outcome)
NOT_FOUND = "Sweep not found."
CANCEL_WAIT_S = 3.0  # a DELETE waits this long for the sweep to say it is canceled


def reading_user_id() -> int:
    """The caller, charged one read of the generous per-user limit."""
    user = caller()
    state = app_state()
    key = user_key(state.settings.ratelimit_key_prefix, user.id)
    g.quota_headers = spend(state.limiter.limiter, READS, key)
    return user.id


def _params(allowed: set[str]) -> dict[str, str]:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise ApiError(400, f"Unknown query parameter(s): {', '.join(unknown)}.")
    return {name: request.args[name] for name in request.args}


SWEEP_ID = re.compile(r"[0-9a-f]{32}")  # what runs are named: uuid4 hex
SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,250}")  # ASCII only: no NUL reaches the database
LIMIT = re.compile(r"[0-9]{1,3}")  # ASCII digits: int() also reads Arabic-Indic ones


def _limit(raw: str | None, default: int = 10) -> int:
    if raw is None:
        return default
    if not LIMIT.fullmatch(raw) or not 1 <= int(raw) <= 100:
        raise ApiError(400, f"limit must be a whole number from 1 to 100, got {raw!r}.")
    return int(raw)


def _known_sweep(sweep_id: str, user_id: int) -> dict[str, Any]:
    """The caller's run, or 404 for anyone else's, a missing one or an id no run can have."""
    run = run_of_user(app_state().db, sweep_id, user_id) if SWEEP_ID.fullmatch(sweep_id) else None
    if run is None:
        raise ApiError(404, NOT_FOUND)
    return run


def _listed(data: list[dict[str, Any]], limit: int, url: str) -> dict[str, Any]:
    return {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "url": url}


@bp.get("/sweeps")
def list_sweeps() -> ResponseReturnValue:
    """The caller's recent sweeps, newest first."""
    user_id = reading_user_id()
    limit = _limit(_params({"limit"}).get("limit"))
    runs = user_runs(app_state().db, user_id, limit + 1)
    return success(_listed(runs, limit, url_for("sweeps.list_sweeps")))


@bp.get("/sweeps/<sweep_id>")
def show_sweep(sweep_id: str) -> ResponseReturnValue:
    """Status and counters (with the rate while it runs); when finished, the endpoint's answer."""
    user_id = reading_user_id()
    _params(set())
    return success(_shown(_known_sweep(sweep_id, user_id)))


@bp.delete("/sweeps/<sweep_id>")
def cancel_sweep(sweep_id: str) -> ResponseReturnValue:
    """Cancel the caller's sweep: a queued one never starts; a running one stops within
    seconds wherever it runs (in-flight expires recorded). 200 once it is canceled, 202 while
    it is still stopping; a sweep that already ended is a 409."""
    user_id = reading_user_id()
    _params(set())
    run = _known_sweep(sweep_id, user_id)
    if run["status"] in ENDED:
        raise ApiError(409, f"This sweep already ended ({run['status']}); nothing to cancel.")
    db = app_state().db
    request_cancel(db, sweep_id)
    SWEEPS_CANCELED.labels("api").inc()
    wait_while_pending(db, sweep_id, CANCEL_WAIT_S)
    run = _shown(_known_sweep(sweep_id, user_id))
    return success(run, 200 if run["status"] == RunStatus.CANCELED else 202)


def _shown(run: dict[str, Any]) -> dict[str, Any]:
    """A run as ``/v1/sweeps/{id}`` shows it: with its rate, and a fleet's children."""
    run["rate"] = _rate(run)
    run["children"] = children_of(app_state().db, run["id"]) if run["fleet"] else []
    return run


def _rate(run: dict[str, Any]) -> float:
    """Sessions expired per second so far."""
    started = datetime.fromisoformat(str(run["started_at"]).replace("Z", "+00:00")).timestamp()
    elapsed = (run["duration_s"] or time.time() - started) or 0.0
    return round(int(run["expired_count"]) / elapsed, 2) if elapsed > 0 else 0.0


@bp.get("/sweeps/<sweep_id>/sessions")
def sweep_sessions(sweep_id: str) -> ResponseReturnValue:
    """Each session's outcome from the audit trail, Stripe-style pages."""
    user_id = reading_user_id()
    params = _params({"limit", "starting_after", "outcome"})
    limit = _limit(params.get("limit"))
    outcome = params.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ApiError(400, f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}.")
    after = params.get("starting_after")
    if after is not None and not SESSION_ID.fullmatch(after):
        raise ApiError(
            400, f"starting_after must be a Checkout Session id (cs_...), got {after!r}."
        )
    _known_sweep(sweep_id, user_id)
    try:
        rows = run_sessions(
            app_state().db,
            sweep_id,
            outcomes=(outcome,) if outcome else (),
            limit=limit + 1,
            starting_after=params.get("starting_after"),
        )
    except LookupError:
        raise ApiError(404, f"No session {params.get('starting_after')!r} in this sweep.") from None
    url = url_for("sweeps.sweep_sessions", sweep_id=sweep_id)
    return success(_listed(rows, limit, url))
