"""The OpenAPI 3.1 document: every path of the service with its parameters, headers and
answers; the schemas come from ``components`` and ``schedules``."""

from __future__ import annotations

from typing import Any

from checkout_sweeper.runs.quota import READS_PER_MINUTE, SWEEPS_PER_HOUR
from checkout_sweeper.vocabulary import JsonObject, Outcome, values
from checkout_sweeper.web.openapi.components import ERROR, QUOTA, RETRY_AFTER, header, schemas
from checkout_sweeper.web.openapi.schedules import (
    BAD_BODY,
    TOO_LARGE,
    schedule_paths,
    schedule_schemas,
)
from checkout_sweeper.web.sweeps import SESSION_ID

STATUSES: list[tuple[str, str]] = [
    ("200", "Sweep done: counts, failures and the sessions still open (empty means clean)."),
    ("202", "Prefer: respond-async was sent: the sweep goes on; follow the Location header."),
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
    ("429", f"More than {SWEEPS_PER_HOUR} sweeps by this user in one hour."),
    ("500", "Stripe unreachable or rejected the key, or anything unexpected."),
    ("503", "The rate-limit storage (Redis) cannot be reached: the service fails closed."),
]
RESOURCE_STATUSES = {
    "400": "An unknown or malformed query parameter.",
    "401": "No or malformed Bearer header, or the token is invalid.",
    "404": "No such user, or no such sweep of this user.",
    "429": f"More than {READS_PER_MINUTE} reads of sweeps by this user in a minute.",
    "500": "Anything unexpected.",
    "503": "The rate-limit storage (Redis) cannot be reached.",
}


def _answer(text: str, schema: JsonObject = ERROR, **headers: Any) -> JsonObject:
    answer: JsonObject = {
        "description": text,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _sweep_responses() -> JsonObject:
    responses = {code: _answer(text) for code, text in STATUSES}
    responses["200"] = _answer(STATUSES[0][1], {"$ref": "#/components/schemas/SweepSuccess"})
    responses["200"]["headers"] = dict(QUOTA)
    responses["202"] = _answer(
        STATUSES[1][1],
        {"$ref": "#/components/schemas/SweepAccepted"},
        Location=header("Where the sweep can be followed.", {"type": "string"}),
        **{"Preference-Applied": header("respond-async", {"const": "respond-async"})},
        **QUOTA,
    )
    responses["429"]["headers"] = {**QUOTA, "Retry-After": RETRY_AFTER}
    responses["500"]["headers"] = {k: {**v, "required": False} for k, v in QUOTA.items()}
    responses["503"]["headers"] = {"Retry-After": RETRY_AFTER}
    return responses


def _resource_responses(ok: str, schema: str) -> JsonObject:
    responses = {code: _answer(text) for code, text in RESOURCE_STATUSES.items()}
    responses["200"] = _answer(ok, {"$ref": f"#/components/schemas/{schema}"})
    responses["429"]["headers"] = {"Retry-After": RETRY_AFTER}
    responses["503"]["headers"] = {"Retry-After": RETRY_AFTER}
    return responses


def _query(name: str, text: str, schema: JsonObject, example: Any) -> JsonObject:
    return {"name": name, "in": "query", "description": text, "schema": schema, "example": example}


LIMIT = _query(
    "limit",
    "How many (default 10).",
    {"type": "integer", "minimum": 1, "maximum": 100},
    10,
)
SWEEP_ID = {
    "name": "sweep_id",
    "in": "path",
    "required": True,
    "description": "The id the sweep was given.",
    "schema": {"type": "string"},
    "example": "5b0c1e2a9f3d4c51b2a7e8d6c4f1a903",
}
PREFER = {
    "name": "Prefer",
    "in": "header",
    "description": "respond-async: answer 202 at once and run the sweep in the background.",
    "schema": {"type": "string"},
    "example": "respond-async",
}


def _operation(
    summary: str, op_id: str, responses: JsonObject, *params: JsonObject
) -> dict[str, JsonObject]:
    return {
        "get": {
            "summary": summary,
            "operationId": op_id,
            "security": [{"bearer": []}],
            "parameters": list(params),
            "responses": responses,
        }
    }


def _paths(prefix: str) -> JsonObject:
    outcome = _query(
        "outcome",
        "Only this outcome.",
        {"enum": values(Outcome)},
        "expired",
    )
    after = _query(
        "starting_after",
        "The last session id of the previous page.",
        {"type": "string", "pattern": f"^{SESSION_ID.pattern}$"},
        "cs_test_a1b2c3",
    )
    return {
        f"{prefix}/active_checkout_sessions_and_expire_all": _operation(
            "Expire all open Checkout Sessions; return those still open",
            "expireAllOpenCheckoutSessions",
            _sweep_responses(),
            PREFER,
        ),
        f"{prefix}/sweeps": {
            **_operation(
                "The caller's recent sweeps, newest first",
                "listSweeps",
                _resource_responses("A list of sweeps.", "SweepList"),
                LIMIT,
            ),
            "post": _create_operation(),
        },
        f"{prefix}/sweeps/{{sweep_id}}": {
            **_operation(
                "One sweep: live counters while it runs, the endpoint's answer when done",
                "getSweep",
                _resource_responses("The sweep.", "SweepShown"),
                SWEEP_ID,
            ),
            "delete": _cancel_operation(),
        },
        f"{prefix}/sweeps/{{sweep_id}}/sessions": _operation(
            "Each session of a sweep and its outcome, from the audit trail",
            "listSweepSessions",
            _resource_responses("A page of sessions.", "SessionList"),
            SWEEP_ID,
            LIMIT,
            after,
            outcome,
        ),
        **schedule_paths(prefix),
        **_health_paths(),
    }


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "description": "Retry safely: the same key and body answer with the sweep the first "
    "request started (Idempotent-Replayed: true); another body with the key is a 422.",
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    "example": "ci-run-1234",
}


def _create_operation() -> JsonObject:
    responses = {code: _answer(text) for code, text in STATUSES if code not in ("200", "202")}
    responses["400"] = _answer(BAD_BODY)
    responses["413"] = _answer(TOO_LARGE)
    responses["202"] = _answer(
        "The sweep is queued or running; follow the Location header.",
        {"$ref": "#/components/schemas/SweepAccepted"},
        Location=header("Where the sweep can be followed.", {"type": "string"}),
        **{"Idempotent-Replayed": header("true on a replay", {"const": "true"}, False)},
        **{name: {**value, "required": False} for name, value in QUOTA.items()},
    )
    responses["422"] = _answer("This Idempotency-Key was first used with another body.")
    responses["429"]["headers"] = {**QUOTA, "Retry-After": RETRY_AFTER}
    responses["503"]["headers"] = {"Retry-After": RETRY_AFTER}
    operation = _operation(
        "Start a scoped sweep (age, customer, payment link, metadata, limit; dry run)",
        "createSweep",
        responses,
        IDEMPOTENCY_KEY,
    )["get"]
    operation["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SweepRequest"}}},
    }
    return operation


def _cancel_operation() -> JsonObject:
    responses = _resource_responses("Canceled: nothing more is sent to Stripe.", "SweepShown")
    responses["202"] = _answer(
        "Cancel asked; the sweep stops within seconds (follow it at the same URL).",
        {"$ref": "#/components/schemas/SweepShown"},
    )
    responses["409"] = _answer("The sweep already ended: nothing to cancel.")
    operation = _operation(
        "Cancel a queued or running sweep (in-flight expires are recorded; never resumed)",
        "cancelSweep",
        responses,
        SWEEP_ID,
    )
    return operation["get"]


def _health_paths() -> JsonObject:
    health = _answer("Alive.", {"$ref": "#/components/schemas/Health"})
    ready = _answer("Ready.", {"$ref": "#/components/schemas/Ready"})
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers (it touches no dependency)",
                "operationId": "healthz",
                "responses": {"200": health},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the database and the rate-limit storage answer",
                "operationId": "readyz",
                "responses": {
                    "200": ready,
                    "503": _answer("A dependency does not answer; the message names it."),
                },
            }
        },
    }


def openapi_spec(prefix: str) -> JsonObject:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "checkout-sweeper",
            "version": "1",
            "description": "Expire every open Stripe Checkout Session of the account, and "
            "follow what each sweep did.",
        },
        "paths": _paths(prefix),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {**schemas(), **schedule_schemas()},
        },
    }
