"""The ``v1`` blueprint: ``GET /v1/active_checkout_sessions_and_expire_all``.

The view checks what is the door's (auth, claims, query, user) and hands the rest of the
contract's checks (customer, live mode, running sweep, quota) and the sweep to
``runs.submit``. With ``Prefer: respond-async`` (RFC 7240) it answers 202 once every check has
passed and the sweep goes on in the background or on the job queue; ``/v1/sweeps/{id}``
follows it.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, g, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import MethodNotAllowed

from checkout_sweeper.errors import RequestInvalid, SweepAborted
from checkout_sweeper.runs.launch import SEED
from checkout_sweeper.runs.rows import run_of_user, wait_while_pending
from checkout_sweeper.runs.submit import Submitted, submit_sweep
from checkout_sweeper.vocabulary import RunStatus
from checkout_sweeper.web.caller import (
    as_submitter,
    authenticated_user_id,
    load_user,
    quota_seen,
    services,
)
from checkout_sweeper.web.envelopes import GET_ONLY, success
from checkout_sweeper.web.state import app_state

bp = Blueprint("v1", __name__)
RESPOND_ASYNC = re.compile(r"(^|,)\s*respond-async\s*(;|,|$)", re.IGNORECASE)


GET_ONLY.add(f"{bp.name}.active_checkout_sessions_and_expire_all")


@bp.before_request
def only_get() -> None:
    """A destructive GET: HEAD (link checkers, uptime monitors) and OPTIONS sweep nothing."""
    if request.method != "GET":
        raise MethodNotAllowed(valid_methods=["GET"])


def wants_async() -> bool:
    return any(RESPOND_ASYNC.search(value) for value in request.headers.getlist("Prefer"))


@bp.get("/active_checkout_sessions_and_expire_all")
def active_checkout_sessions_and_expire_all() -> ResponseReturnValue:
    """Expire every open Checkout Session of the account; answer with what is left open."""
    g.user_id = authenticated_user_id()
    if request.args:
        names = ", ".join(sorted(request.args))
        raise RequestInvalid(f"This endpoint accepts no query parameters; got: {names}.")
    state = app_state()
    awaits_worker = state.settings.queue_url is not None and state.settings.sync_wait_s > 0
    in_thread = not wants_async() and not awaits_worker
    submitted = submit_sweep(
        as_submitter(load_user(g.user_id)),
        services(),
        SEED,
        in_thread=in_thread,
        quota_seen=quota_seen,
    )
    if submitted.sweep is not None:
        return _finish(submitted)
    if wants_async():
        return accepted(submitted.sweep_id, submitted.status)
    return _awaited(submitted.sweep_id, g.user_id, state.settings.sync_wait_s)


def accepted(sweep_id: str, status: str, *, preferred: bool = True) -> Response:
    """202 and where to follow the sweep (``preferred``: the client asked for it so)."""
    location = url_for("sweeps.show_sweep", sweep_id=sweep_id)
    response = success({"sweep_id": sweep_id, "status": status, "location": location}, 202)
    response.headers["Location"] = location
    if preferred:
        response.headers["Preference-Applied"] = "respond-async"
    return response


def _awaited(sweep_id: str, user_id: int, wait_s: float) -> ResponseReturnValue:
    """A synchronous call a worker runs: the answer it recorded, as if the request had run
    it; past ``wait_s``, 202 and where to follow it."""
    db = app_state().db
    db.deadlines.disarm()  # the checks are done: the wait takes its own time
    status = wait_while_pending(db, sweep_id, wait_s)
    if status in (RunStatus.QUEUED, RunStatus.RUNNING):
        return accepted(sweep_id, status, preferred=False)
    run = run_of_user(db, sweep_id, user_id)
    if run is None or run.result is None:  # it stopped early: the run row says why
        raise SweepAborted(str(run.error if run else "the sweep was not recorded"))
    return success(run.result)


def _finish(submitted: Submitted) -> ResponseReturnValue:
    app_state().db.deadlines.disarm()  # the checks are done: the sweep takes its own time
    result = submitted.run()
    g.sweep_counts = {
        "sweep_id": result.sweep_id,
        "expired": result.expired_count,
        "already_closed": result.already_closed_count,
        "failed": len(result.failed),
        "remaining": result.remaining_open_count,
        "succeeded": result.succeeded,
    }
    return success(result.as_data())
