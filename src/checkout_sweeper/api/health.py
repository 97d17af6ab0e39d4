"""``/healthz`` (the process answers) and ``/readyz`` (its database and limiter storage do)."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from ..responses import error, success
from .state import app_state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return success({"alive": True})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    state = app_state()
    checks: dict[str, str] = {}
    try:
        with state.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as err:
        checks["database"] = f"unreachable: {type(err).__name__}"
    try:
        storage = state.limiter.storage
        checks["rate_limit_storage"] = "ok" if storage is None or storage.check() else "unreachable"
    except Exception as err:
        checks["rate_limit_storage"] = f"unreachable: {type(err).__name__}"
    if all(v == "ok" for v in checks.values()):
        return success({"ready": True, "checks": checks})
    return error(503, "Not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok"))
