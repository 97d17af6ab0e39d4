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

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from checkout_sweeper.engine.scope import EVERYTHING, parse_scope
from checkout_sweeper.errors import ApiError, ScopeInvalid
from checkout_sweeper.runs import background
from checkout_sweeper.runs.launch import Asked
from checkout_sweeper.runs.rows import run_by_idempotency_key
from checkout_sweeper.store.models import User
from checkout_sweeper.vocabulary import RunStatus
from checkout_sweeper.web.caller import caller
from checkout_sweeper.web.endpoint import accepted, queued, start
from checkout_sweeper.web.state import app_state

bp = Blueprint("scoped", __name__)

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
    asked = _asked(body)
    key = _idempotency_key()
    if key is None:
        return _started(user, asked)
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    earlier = run_by_idempotency_key(app_state().db, user.id, key)
    if earlier is None:
        row: dict[str, object] = {"idempotency_key": key, "request_fingerprint": fingerprint}
        keyed = dataclasses.replace(asked, row=row)
        try:
            return _started(user, keyed)
        except IntegrityError:  # the same key, at the same moment: the other one won
            earlier = run_by_idempotency_key(app_state().db, user.id, key)
            if earlier is None:
                raise
    return _replayed(earlier, fingerprint)


def _started(user: User, asked: Asked) -> ResponseReturnValue:
    if app_state().broker is not None:
        return accepted(queued(user, asked), RunStatus.QUEUED, preferred=False)
    sweep = start(user, in_request=False, asked=asked)
    background.start(sweep)
    return accepted(sweep.sweep_id, RunStatus.RUNNING, preferred=False)


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


def _asked(body: dict[str, Any]) -> Asked:
    asked, problems = read_asked(body)
    refuse_problems(problems, "sweep request")
    return asked


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
