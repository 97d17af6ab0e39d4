"""The ``v1`` blueprint: ``GET /v1/active_checkout_sessions_and_expire_all``.

The view runs the checks of the product contract in their fixed order (auth, claims, query,
user, customer, live mode, running sweep, quota) and hands the sweep to the service. With
``Prefer: respond-async`` (RFC 7240) it answers 202 once every check has passed and the sweep
goes on in this process; ``/v1/sweeps/{id}`` follows it.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, g, has_request_context, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import MethodNotAllowed

from checkout_sweeper.errors import RequestInvalid, SweepAborted, UserHasCustomer
from checkout_sweeper.runs import background
from checkout_sweeper.runs.launch import SEED, Asked, refuse_early, start_configured_sweep
from checkout_sweeper.runs.queue.producer import queue_run
from checkout_sweeper.runs.quota import SWEEPS, room, spend, user_key
from checkout_sweeper.runs.recorded_sweep import RecordedSweep
from checkout_sweeper.runs.rows import run_of_user, wait_while_pending
from checkout_sweeper.store.models import User
from checkout_sweeper.vocabulary import RunStatus, Trigger
from checkout_sweeper.web.caller import authenticated_user_id, load_user
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
    user = load_user(g.user_id)
    if user.stripe_customer_id:
        raise UserHasCustomer(
            "This user already has a Stripe customer "
            f"({user.stripe_customer_id}); this cleanup endpoint is only for users without one.",
        )
    state = app_state()
    if state.broker is not None and (wants_async() or state.settings.sync_wait_s > 0):
        sweep_id = queued(user)
        if wants_async():
            return accepted(sweep_id, RunStatus.QUEUED)
        return _awaited(sweep_id, user.id, state.settings.sync_wait_s)
    sweep = start(user, in_request=not wants_async())
    if wants_async():
        background.start(sweep)
        return accepted(sweep.sweep_id, RunStatus.RUNNING)
    return _finish(sweep)


def accepted(sweep_id: str, status: str, *, preferred: bool = True) -> Response:
    """202 and where to follow the sweep (``preferred``: the client asked for it so)."""
    location = url_for("sweeps.show_sweep", sweep_id=sweep_id)
    response = success({"sweep_id": sweep_id, "status": status, "location": location}, 202)
    response.headers["Location"] = location
    if preferred:
        response.headers["Preference-Applied"] = "respond-async"
    return response


def queued(user: User, asked: Asked = SEED) -> str:
    """With a job queue the web process runs no sweep: the checks that need no lease here,
    then a queued run row and a message; the worker that takes it leases the account, checks
    the quota again and spends it once the sweep has run."""
    state = app_state()
    assert state.broker is not None
    refuse_early(state.settings, state.db)
    key = user_key(state.settings.ratelimit_key_prefix, user.id)
    g.quota_headers = room(state.limiter.limiter, SWEEPS, key)
    return queue_run(
        state.settings, state.db, state.broker, trigger=Trigger.API, user_id=user.id, asked=asked
    )


def start(user: User, *, in_request: bool, asked: Asked = SEED) -> RecordedSweep:
    """Every check, the lease and room in the quota; the sweep is recorded as running. The
    quota is spent once the sweep has run (in the background too, where no request is)."""
    state = app_state()
    refuse_early(state.settings, state.db)
    counter = state.limiter.limiter
    key = user_key(state.settings.ratelimit_key_prefix, user.id)

    def check() -> None:
        g.quota_headers = room(counter, SWEEPS, key)

    def count() -> None:
        headers = spend(counter, SWEEPS, key)
        if has_request_context():
            g.quota_headers = headers

    return start_configured_sweep(
        state.settings,
        state.db,
        trigger=Trigger.API,
        user_id=user.id,
        once_leased=check,
        once_ran=count,
        in_request=in_request,
        asked=asked,
    )


def _awaited(sweep_id: str, user_id: int, wait_s: float) -> ResponseReturnValue:
    """A synchronous call a worker runs: the answer it recorded, as if the request had run
    it; past ``wait_s``, 202 and where to follow it."""
    db = app_state().db
    db.deadlines.disarm()  # the checks are done: the wait takes its own time
    status = wait_while_pending(db, sweep_id, wait_s)
    if status in (RunStatus.QUEUED, RunStatus.RUNNING):
        return accepted(sweep_id, status, preferred=False)
    run = run_of_user(db, sweep_id, user_id)
    if run is None or run["result"] is None:  # it stopped early: the run row says why
        raise SweepAborted(str(run["error"] if run else "the sweep was not recorded"))
    return success(run["result"])


def _finish(sweep: RecordedSweep) -> ResponseReturnValue:
    app_state().db.deadlines.disarm()  # the checks are done: the sweep takes its own time
    result = sweep.run()
    g.sweep_counts = {
        "sweep_id": result.sweep_id,
        "expired": result.expired_count,
        "already_closed": result.already_closed_count,
        "failed": len(result.failed),
        "remaining": result.remaining_open_count,
        "succeeded": result.succeeded,
    }
    return success(result.as_data())
