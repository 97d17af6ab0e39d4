"""``POST /v1/sweeps``: a scoped sweep asked for with a JSON body, always answered 202.

The body is checked whole before anything happens (400 naming every bad field, nothing spent);
then the same checks and quota as the seed endpoint. An ``Idempotency-Key`` makes a retried
request safe, as Stripe's own keys do: the same key with the same body answers with the sweep
the first request started; with another body it is a 422.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

from flask import Blueprint, g, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from checkout_sweeper.engine.scope import EVERYTHING, parse_scope
from checkout_sweeper.errors import ApiError, ScopeInvalid
from checkout_sweeper.runs import background
from checkout_sweeper.runs.fleet import FleetSweep
from checkout_sweeper.runs.fleet_queue import queue_fleet
from checkout_sweeper.runs.fleet_rows import FleetPlan
from checkout_sweeper.runs.launch import Asked, identified_gateway
from checkout_sweeper.runs.rows import run_by_idempotency_key
from checkout_sweeper.store.models import User
from checkout_sweeper.vocabulary import RunStatus, Trigger
from checkout_sweeper.web.caller import caller
from checkout_sweeper.web.endpoint import accepted, queued, start
from checkout_sweeper.web.quota import SWEEPS, room, spend, user_key
from checkout_sweeper.web.state import app_state

bp = Blueprint("scoped", __name__)

Accounts = str | list[str] | None
ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9]{1,64}")
MAX_ACCOUNTS = 1000
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # Stripe's limit: 255 printable characters
KEY_REUSED = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with: this Idempotency-Key started sweep {sweep_id} with another body."
)


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
        except IntegrityError:  # the same key, at the same moment: the other one won
            earlier = run_by_idempotency_key(app_state().db, user.id, key)
            if earlier is None:
                raise
    return _replayed(earlier, fingerprint)


def _started(user: User, asked: Asked, accounts: Accounts) -> ResponseReturnValue:
    if accounts is not None:
        return _fleet_started(user, asked, accounts)
    if app_state().broker is not None:
        return accepted(queued(user, asked), RunStatus.QUEUED, preferred=False)
    sweep = start(user, in_request=False, asked=asked)
    background.start(sweep)
    return accepted(sweep.sweep_id, RunStatus.RUNNING, preferred=False)


def _fleet_started(user: User, asked: Asked, accounts: str | list[str]) -> ResponseReturnValue:
    """A fleet sweep: the live-mode guard and the quota as for one account; the quota is
    spent once the fleet has run (on the job queue, once its children are queued)."""
    state = app_state()
    platform = identified_gateway(state.settings, state.db, dry_run=asked.dry_run)
    key = user_key(state.settings.ratelimit_key_prefix, user.id)
    counter = state.limiter.limiter
    g.quota_headers = room(counter, SWEEPS, key)
    chosen = platform.connected_accounts() if accounts == "all" else list(accounts)
    plan = FleetPlan(chosen, asked, Trigger.API, user.id)
    if state.broker is not None:
        parent_id = queue_fleet(state.settings, state.db, state.broker, platform, plan)
        g.quota_headers = spend(counter, SWEEPS, key)
        return accepted(parent_id, RunStatus.RUNNING, preferred=False)
    fleet = FleetSweep(state.settings, state.db, platform, plan)

    def once_ran() -> None:
        spend(counter, SWEEPS, key)

    background.start_fleet(fleet, once_ran)
    return accepted(fleet.sweep_id, RunStatus.RUNNING, preferred=False)


def _replayed(earlier: dict[str, Any], fingerprint: str) -> ResponseReturnValue:
    if earlier["request_fingerprint"] != fingerprint:
        raise ApiError(422, KEY_REUSED.format(sweep_id=earlier["id"]))
    response = accepted(earlier["id"], earlier["status"], preferred=False)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object (Content-Type: application/json).")
    return body


def _asked(body: dict[str, Any]) -> tuple[Asked, Accounts]:
    asked, problems = read_asked(body, besides=("accounts",))
    accounts = _accounts(body.get("accounts"), problems)
    refuse_problems(problems, "sweep request")
    return asked, accounts


def _accounts(value: Any, problems: dict[str, str]) -> Accounts:
    """``"all"``, a list of connected account ids, or None (the key's own account)."""
    if value is None or value == "all":
        return value
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_ACCOUNTS
        or not all(isinstance(a, str) and ACCOUNT_ID.fullmatch(a) for a in value)
        or len(set(value)) != len(value)
    ):
        problems["accounts"] = (
            f'expected "all" or a list of 1 to {MAX_ACCOUNTS} different ids such as acct_1AbC'
        )
        return None
    return list(value)


def read_asked(body: dict[str, Any], *, besides: tuple[str, ...] = ()) -> tuple[Asked, dict]:
    """The scope and dry-run flag of a body, and every problem found, by field; the fields
    in ``besides`` are the caller's to read."""
    problems: dict[str, str] = {}
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        problems["dry_run"] = "expected true or false"
    scope = EVERYTHING
    fields = {name: value for name, value in body.items() if name not in ("dry_run", *besides)}
    try:
        scope = parse_scope(fields)
    except ScopeInvalid as err:
        problems.update(err.problems)
    return Asked(scope, dry_run is True), problems


def refuse_problems(problems: dict[str, str], what: str) -> None:
    """400 naming every bad field, when there are any."""
    if problems:
        named = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
        raise ApiError(400, f"Invalid {what}: {named}.")


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters.")
    return key
