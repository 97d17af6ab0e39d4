"""``/openapi.json`` and ``/docs``: the document, and Swagger UI to read it and try calls.

Swagger UI's files come from the ``flask-swagger-ui`` package (no CDN: the page works offline);
the page has no inline script, so it runs under a strict Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, jsonify, redirect, send_from_directory, url_for
from flask.typing import ResponseReturnValue

from checkout_sweeper.web.openapi.document import openapi_spec
from checkout_sweeper.web.state import app_state

bp = Blueprint("docs", __name__)
SWAGGER_UI = Path(flask_swagger_ui.__file__).parent / "dist"
STATIC = Path(__file__).parent.parent / "static"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_spec(app_state().settings.api_prefix))


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    return response


@bp.get("/docs/")
def docs_with_a_slash() -> ResponseReturnValue:
    """``/docs/`` is where many people look first."""
    return redirect(url_for("docs.docs"), code=301)


@bp.get("/docs")
def docs() -> Response:
    return _secured(send_from_directory(STATIC, "docs.html"))


@bp.get("/docs/init.js")
def docs_init() -> Response:
    return _secured(send_from_directory(STATIC, "docs.js"))


@bp.get("/docs/ui/<path:name>")
def docs_ui(name: str) -> Response:
    return _secured(send_from_directory(SWAGGER_UI, name))
