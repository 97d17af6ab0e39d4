"""``/healthz`` (the process answers) and ``/readyz`` (its database and limiter storage do).

``/healthz`` touches no dependency. ``/readyz`` checks each dependency in a thread with a
deadline, so a database or Redis that accepts connections and never answers makes it a 503 in
seconds instead of a hung probe.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as Late

from flask import Blueprint
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from checkout_sweeper.web.envelopes import error, success
from checkout_sweeper.web.state import AppState, app_state

bp = Blueprint("health", __name__)
CHECK_TIMEOUT_S = 3.0
_checks = ThreadPoolExecutor(4, thread_name_prefix="readyz")


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return success({"alive": True})


def _database(state: AppState) -> None:
    with state.db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _rate_limit_storage(state: AppState) -> None:
    storage = state.limiter.storage
    if storage is not None and not storage.check():
        raise ConnectionError("no answer")


def _probe(check: Callable[[AppState], None], state: AppState) -> str:
    future = _checks.submit(check, state)
    try:
        future.result(timeout=CHECK_TIMEOUT_S)
    except Late:
        return f"unreachable: no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as err:
        return f"unreachable: {type(err).__name__}"
    return "ok"


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    state = app_state()
    checks = {
        "database": _probe(_database, state),
        "rate_limit_storage": _probe(_rate_limit_storage, state),
    }
    if all(v == "ok" for v in checks.values()):
        return success({"ready": True, "checks": checks})
    return error(503, "Not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok"))
