"""``/v1/sweeps``: a scoped sweep asked for with a JSON body (``POST``, always 202), and the
sweeps of the user who started them (``GET`` the list, one sweep, its sessions; ``DELETE`` to
cancel). Reads come from the database (the run row the heartbeat updates), so any worker or
instance answers; another user's sweep is a 404. Reads spend a separate, generous per-user
limit, never the sweep quota.

A ``POST`` body is checked whole before anything happens (400 naming every bad field, nothing
spent); then the same checks and quota as the seed endpoint. An ``Idempotency-Key`` makes a
retried request safe, as Stripe's own keys do: the same key with the same body answers with
the sweep the first request started; with another body it is a 422.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, g, request, url_for
from flask.typing import ResponseReturnValue

from checkout_sweeper.errors import (
    AlreadyEnded,
    DuplicateRow,
    IdempotencyKeyReused,
    NotFound,
    RequestInvalid,
)
from checkout_sweeper.metrics import SWEEPS_CANCELED
from checkout_sweeper.runs.cancel import cancel_run
from checkout_sweeper.runs.launch import Asked
from checkout_sweeper.runs.quota import READS, reserve, user_key
from checkout_sweeper.runs.rows import (
    ENDED,
    children_of,
    run_by_idempotency_key,
    run_of_user,
    run_sessions,
    user_runs,
    wait_while_pending,
)
from checkout_sweeper.runs.run import RunView
from checkout_sweeper.runs.submit import MAX_FLEET_ACCOUNTS, submit_fleet, submit_sweep
from checkout_sweeper.store.models import User
from checkout_sweeper.vocabulary import Outcome, RunStatus, values
from checkout_sweeper.web.body import json_body, read_asked, refuse_problems
from checkout_sweeper.web.caller import as_submitter, caller, quota_seen, services
from checkout_sweeper.web.endpoint import accepted
from checkout_sweeper.web.envelopes import success
from checkout_sweeper.web.state import app_state

bp = Blueprint("sweeps", __name__)
OUTCOMES = values(Outcome)
NOT_FOUND = "Sweep not found."
CANCEL_WAIT_S = 3.0  # a DELETE waits this long for the sweep to say it is canceled
Accounts = str | list[str] | None
ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9]{1,64}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # Stripe's limit: 255 printable characters
KEY_REUSED = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with: this Idempotency-Key started sweep {sweep_id} with another body."
)


def reading_user() -> User:
    """The caller, charged one read of the generous per-user limit."""
    user = caller()
    state = app_state()
    key = user_key(state.settings.ratelimit_key_prefix, user.id)
    g.quota_headers = reserve(state.limiter.limiter, READS, key)
    return user


def reading_user_id() -> int:
    return reading_user().id


def _params(allowed: set[str]) -> dict[str, str]:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise RequestInvalid(f"Unknown query parameter(s): {', '.join(unknown)}.")
    return {name: request.args[name] for name in request.args}


SWEEP_ID = re.compile(r"[0-9a-f]{32}")  # what runs are named: uuid4 hex
SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,250}")  # ASCII only: no NUL reaches the database
LIMIT = re.compile(r"[0-9]{1,3}")  # ASCII digits: int() also reads Arabic-Indic ones


def _page_size(raw: str | None, default: int = 10) -> int:
    if raw is None:
        return default
    if not LIMIT.fullmatch(raw) or not 1 <= int(raw) <= 100:
        raise RequestInvalid(f"limit must be a whole number from 1 to 100, got {raw!r}.")
    return int(raw)


def _known_sweep(sweep_id: str, user_id: int) -> RunView:
    """The caller's run, or 404 for anyone else's, a missing one or an id no run can have."""
    run = run_of_user(app_state().db, sweep_id, user_id) if SWEEP_ID.fullmatch(sweep_id) else None
    if run is None:
        raise NotFound(NOT_FOUND)
    return run


def _listed(data: Sequence[object], limit: int, url: str) -> dict[str, object]:
    return {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "url": url}


@bp.get("/sweeps")
def list_sweeps() -> ResponseReturnValue:
    """The caller's recent sweeps, newest first."""
    user_id = reading_user_id()
    limit = _page_size(_params({"limit"}).get("limit"))
    runs = [run.as_json() for run in user_runs(app_state().db, user_id, limit + 1)]
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
    if run.status in (*ENDED, RunStatus.CANCELED):
        raise AlreadyEnded(f"This sweep already ended ({run.status}); nothing to cancel.")
    db = app_state().db
    cancel_run(db, sweep_id)
    SWEEPS_CANCELED.labels("api").inc()
    wait_while_pending(db, sweep_id, CANCEL_WAIT_S)
    run = _known_sweep(sweep_id, user_id)
    return success(_shown(run), 200 if run.status == RunStatus.CANCELED else 202)


def _shown(run: RunView) -> dict[str, object]:
    """A run as ``/v1/sweeps/{id}`` shows it: with its answer, its rate and a fleet's children."""
    now = time.time()
    return run.shown(children_of(app_state().db, run.id) if run.fleet else [], now)


@bp.get("/sweeps/<sweep_id>/sessions")
def sweep_sessions(sweep_id: str) -> ResponseReturnValue:
    """Each session's outcome from the audit trail, Stripe-style pages."""
    user_id = reading_user_id()
    params = _params({"limit", "starting_after", "outcome"})
    limit = _page_size(params.get("limit"))
    outcome = params.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise RequestInvalid(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}.")
    after = params.get("starting_after")
    if after is not None and not SESSION_ID.fullmatch(after):
        raise RequestInvalid(
            f"starting_after must be a Checkout Session id (cs_...), got {after!r}."
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
        raise NotFound(f"No session {params.get('starting_after')!r} in this sweep.") from None
    url = url_for("sweeps.sweep_sessions", sweep_id=sweep_id)
    return success(_listed(rows, limit, url))


@bp.post("/sweeps")
def create_sweep() -> ResponseReturnValue:
    """Start a sweep of the scope in the body; 202 and where to follow it."""
    user = caller()
    body = json_body()
    asked, accounts = _asked(body)
    key = _idempotency_key()
    if key is None:
        return _started(user, asked, accounts)
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    earlier = run_by_idempotency_key(app_state().db, user.id, key)
    if earlier is None:
        row: dict[str, object] = {"idempotency_key": key, "request_fingerprint": fingerprint}
        keyed = dataclasses.replace(asked, row=row)
        try:
            return _started(user, keyed, accounts)
        except DuplicateRow:  # the same key, at the same moment: the other one won
            earlier = run_by_idempotency_key(app_state().db, user.id, key)
            if earlier is None:
                raise
    return _replayed(earlier, fingerprint)


def _started(user: User, asked: Asked, accounts: Accounts) -> ResponseReturnValue:
    """Every check of the contract and the quota, through ``runs.submit`` as on every door."""
    submitter, context = as_submitter(user), services()
    if accounts is not None:
        submitted = submit_fleet(submitter, context, asked, accounts, quota_seen=quota_seen)
    else:
        submitted = submit_sweep(submitter, context, asked, quota_seen=quota_seen)
    return accepted(submitted.sweep_id, submitted.status, preferred=False)


def _replayed(earlier: RunView, fingerprint: str) -> ResponseReturnValue:
    if earlier.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(KEY_REUSED.format(sweep_id=earlier.id))
    response = accepted(earlier.id, earlier.status, preferred=False)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _asked(body: dict[str, Any]) -> tuple[Asked, Accounts]:
    asked, problems = read_asked(body, besides=("accounts",))
    accounts = _accounts(body.get("accounts"), problems)
    refuse_problems(problems, "sweep request")
    return asked, accounts


def _accounts(value: Any, problems: dict[str, str]) -> Accounts:
    """``"all"``, a list of connected account ids, or None (the key's own account)."""
    if value is None:
        return None
    if value == "all":
        return "all"
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_FLEET_ACCOUNTS
        or not all(isinstance(a, str) and ACCOUNT_ID.fullmatch(a) for a in value)
        or len(set(value)) != len(value)
    ):
        problems["accounts"] = (
            f'expected "all" or a list of 1 to {MAX_FLEET_ACCOUNTS} different ids such as acct_1AbC'
        )
        return None
    return list(value)


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise RequestInvalid("Idempotency-Key must be 1 to 255 printable ASCII characters.")
    return key
