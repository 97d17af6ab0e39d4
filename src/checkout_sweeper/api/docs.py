"""``/openapi.json`` (OpenAPI 3.1) and ``/docs``, a readable page rendered from the same spec."""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Blueprint, Response, jsonify

from .. import defaults
from ..tally import SweepResult
from .schemas import dataclass_schema
from .state import app_state

bp = Blueprint("docs", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
_RETRY_AFTER = {
    "schema": {"type": "integer"},
    "description": "Seconds to wait before retrying.",
    "required": True,
}
_QUOTA = {
    "X-RateLimit-Limit": {
        "schema": {"type": "integer"},
        "description": "Calls allowed per hour and user.",
    },
    "X-RateLimit-Remaining": {
        "schema": {"type": "integer"},
        "description": "Calls left in the moving hour.",
    },
    "X-RateLimit-Reset": {
        "schema": {"type": "integer"},
        "description": "Epoch second when a call is freed again.",
    },
}
_DRY_RUN_ONLY = frozenset({"would_expire"})  # the endpoint never makes a dry run
STATUSES: list[tuple[str, str]] = [
    ("200", "Sweep done: counts, failures and the sessions still open (empty means clean)."),
    (
        "400",
        "The token's user id claim is missing or not a string or integer, or a query parameter "
        "was sent (none are accepted).",
    ),
    ("401", "No or malformed Bearer header; token invalid, expired, not yet valid, no exp."),
    ("403", "The configured Stripe key is live-mode and SWEEPER_ALLOW_LIVE_MODE is not set."),
    (
        "404",
        "No user has the token's id ('User not found.'); only the canonical spelling of a row "
        "id (ASCII digits, no sign, no leading zero) names a user.",
    ),
    ("409", "The user already has a stripe_customer_id, or a sweep of the account is running."),
    (
        "429",
        f"More than {defaults.SWEEPS_PER_HOUR} requests by this user in one hour; see Retry-After.",
    ),
    ("500", "Stripe unreachable or rejected the key, or anything unexpected."),
    ("503", "The shared rate-limit storage (Redis) is unreachable: the endpoint fails closed."),
]


def _sweep_responses() -> dict[str, Any]:
    """Every status of the endpoint: the success schema for 200, the error envelope else."""
    responses: dict[str, Any] = {
        code: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
        for code, text in STATUSES
    }
    responses["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/SweepSuccess"
    }
    for code in ("200", "429"):  # the answers given after the quota was counted
        responses[code]["headers"] = {k: {**v, "required": True} for k, v in _QUOTA.items()}
    responses["500"]["headers"] = dict(_QUOTA)  # when the sweep had started
    responses["429"]["headers"]["Retry-After"] = _RETRY_AFTER
    responses["503"]["headers"] = {"Retry-After": _RETRY_AFTER}
    return responses


def _schemas() -> dict[str, Any]:
    return {
        "Error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"const": "error"},
                "code": {"type": "integer"},
                "message": {"type": "string"},
            },
        },
        "SweepSuccess": {
            "type": "object",
            "required": ["status", "code", "data"],
            "properties": {
                "status": {"const": "success"},
                "code": {"const": 200},
                "data": dataclass_schema(SweepResult, optional=_DRY_RUN_ONLY),
            },
        },
    }


def openapi_spec(prefix: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "checkout-sweeper",
            "version": "1",
            "description": "Expire every open Stripe Checkout Session of the account.",
        },
        "paths": {
            f"{prefix}/active_checkout_sessions_and_expire_all": {
                "get": {
                    "summary": "Expire all open Checkout Sessions; return those still open",
                    "operationId": "expireAllOpenCheckoutSessions",
                    "security": [{"bearer": []}],
                    "parameters": [],
                    "responses": _sweep_responses(),
                }
            },
            "/healthz": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: database and rate-limit storage reachable",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": _schemas(),
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_spec(app_state().settings.api_prefix))


@bp.get("/docs")
def docs() -> Response:
    prefix = app_state().settings.api_prefix
    rows = "".join(f"<tr><td>{code}</td><td>{escape(text)}</td></tr>" for code, text in STATUSES)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>checkout-sweeper API</title>
<style>body{{font-family:sans-serif;max-width:52em;margin:2em auto}}td{{padding:.3em .8em;
border-bottom:1px solid #ddd;vertical-align:top}}code{{background:#f4f4f4}}</style></head><body>
<h1>checkout-sweeper API</h1>
<h2><code>GET {escape(prefix)}/active_checkout_sessions_and_expire_all</code></h2>
<p>Expires every open Stripe Checkout Session of the configured account and answers with the
sessions still open afterwards. Send <code>Authorization: Bearer &lt;JWT&gt;</code>; the user id
comes from the token's user id claim. No query parameters.
{defaults.SWEEPS_PER_HOUR} requests per user per hour.</p>
<table><tr><th>status</th><th>when</th></tr>{rows}</table>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. Health: <code>/healthz</code>,
<code>/readyz</code>.</p></body></html>"""
    return Response(page, mimetype="text/html")
