"""The two envelopes every answer of the service uses, and the handlers that enforce them.

``{"status": "success", "code": 200, "data": {...}}`` and
``{"status": "error", "code": N, "message": "..."}``: 404, 405, 429 and 500 included, so a
client never has to parse an HTML error page. A 500 says only the spec's sentence; what went
wrong goes to the log.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from checkout_sweeper.errors import ApiError, SweeperError

__all__ = ["UNEXPECTED", "ApiError", "error", "register_error_handlers", "success"]

UNEXPECTED = "An unexpected error occurred."
log = logging.getLogger("checkout_sweeper.api")


def success(data: Any, code: int = 200) -> Response:
    response = jsonify({"status": "success", "code": code, "data": data})
    response.status_code = code
    return response


def error(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"status": "error", "code": code, "message": message})
    response.status_code = code
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def answer(err: SweeperError) -> Response:
    """Every error of the tree answers with its own status; a server-side one (not ``public``)
    is logged and answered with the spec's one sentence. A dependency that is down (5xx) is
    logged with what its public message leaves out (which database, the driver's words)."""
    if err.public:
        if err.http_status >= 500:
            log.warning("%s: %s", type(err).__name__, err)
        return error(err.http_status, err.public_message, err.headers)
    log.error("%s: %s", type(err).__name__, err)
    return error(err.http_status, UNEXPECTED, err.headers)


GET_ONLY: set[str] = set()  # endpoints that answer GET alone: HEAD and OPTIONS would act too


def _only_get(allowed: list[str]) -> list[str]:
    """``GET`` for a GET-only endpoint (routing would also offer HEAD and OPTIONS)."""
    try:
        endpoint, _ = current_app.url_map.bind_to_environ(request.environ).match(method="GET")
    except HTTPException:
        return allowed
    return ["GET"] if endpoint in GET_ONLY else allowed


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(SweeperError, answer)

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(err: RateLimitExceeded) -> Response:
        return error(
            429, f"Rate limit exceeded ({err.description}); retry after the seconds in Retry-After."
        )

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        response = error(err.code or 500, err.description or err.name)
        allowed = getattr(err, "valid_methods", None)
        if err.code == 405 and allowed:
            response.headers["Allow"] = ", ".join(_only_get(allowed))
        return response

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Response:
        log.exception("unhandled error: %s", type(err).__name__)
        return error(500, UNEXPECTED)
