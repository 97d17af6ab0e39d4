"""The schemas of the OpenAPI document: every answer body, header and status of the service.

Answer bodies come from the code that makes them: the sweep's ``data`` from the
``SweepResult`` dataclass, a run from ``RUN_FIELDS``; a request's scope from the engine's
``SCOPE_FIELDS``. The tests validate real answers of every status against this document, and
schemathesis checks it against the running service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from checkout_sweeper.engine.scope import SCOPE_FIELDS, ScopeField
from checkout_sweeper.engine.tally import SweepResult
from checkout_sweeper.runs.fleet.result import FleetAnswer
from checkout_sweeper.runs.quota import SWEEPS_PER_HOUR
from checkout_sweeper.runs.submit import MAX_FLEET_ACCOUNTS
from checkout_sweeper.vocabulary import JsonObject, Outcome, RunStatus, Trigger, values
from checkout_sweeper.web.openapi.reflect import dataclass_schema, typed_dict_schema

_INT = {"type": "integer"}
_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_OPT_INT = {"type": ["integer", "null"]}
ERROR = {"$ref": "#/components/schemas/Error"}
DRY_RUN_ONLY = frozenset({Outcome.WOULD_EXPIRE.value})  # the endpoint never makes a dry run

RUN_FIELDS: dict[str, tuple[JsonObject, str]] = {
    "id": (_STR, "The sweep id."),
    "status": ({"enum": values(RunStatus)}, "running until it ends; then how it ended."),
    "trigger": ({"enum": values(Trigger)}, "Which door started it."),
    "user_id": (_OPT_INT, "The user who started it (null for the command line)."),
    "removed_user_id": (_OPT_INT, "Who started it, when that user was removed since."),
    "removed_user_email": (_OPT_STR, "Their e-mail, as it was when they were removed."),
    "account": (_STR, "The Stripe account swept, as test:acct_... or live:acct_..."),
    "livemode": ({"type": "boolean"}, "Whether the key was a live-mode key."),
    "dry_run": ({"type": "boolean"}, "Whether it only listed."),
    "started_at": (_STR, "ISO 8601, UTC."),
    "finished_at": (_OPT_STR, "ISO 8601, UTC; null while it runs."),
    "duration_s": ({"type": ["number", "null"]}, "Seconds it took; null while it runs."),
    "expired_count": (_INT, "Sessions expired so far."),
    "already_closed_count": (_INT, "Sessions found closed on their own so far."),
    "failed_count": (_INT, "Sessions that could not be expired so far."),
    "remaining_count": (_OPT_INT, "Sessions left open at the end; null until it ends."),
    "found_count": (_INT, "Open sessions found so far (the sweep handles each once)."),
    "listing_complete": (
        {"type": "boolean"},
        "True once a pass listed to the end of Stripe's list: then (expired + already closed "
        "+ failed) / found_count is the share done (sessions created meanwhile may add a few).",
    ),
    "stripe_requests": (_INT, "Requests sent to Stripe so far."),
    "error": (_OPT_STR, "Why it stopped early, if it did."),
    "host": (_OPT_STR, "The host that ran it."),
    "pid": (_OPT_INT, "The process that ran it."),
    "worker": (
        {
            "type": ["object", "null"],
            "required": ["host", "pid"],
            "properties": {"host": _STR, "pid": _OPT_INT},
        },
        "The process running it now (or that ran it last); null while it waits in the queue.",
    ),
    "attempts": (_INT, "How many times a process took it up (a resumed sweep counts each)."),
    "queued_at": (_OPT_STR, "ISO 8601, UTC, when it was queued; null if it never was."),
    "scope": (
        {"type": "object"},
        "Which open sessions it could expire (older_than, created_before as fixed when it "
        "started, customer, payment_link, metadata, limit); empty: every one.",
    ),
    "schedule_id": (_OPT_STR, "The schedule that started it, if one did."),
    "parent_id": (_OPT_STR, "The fleet sweep this account's sweep is part of, if it is one."),
    "fleet": ({"type": "boolean"}, "A fleet sweep: its children sweep one account each."),
    "stripe_account": (_OPT_STR, "The connected account it acts on (Stripe-Account), if any."),
}
ACCOUNTS = (
    {
        "anyOf": [
            {"const": "all"},
            {
                "type": "array",
                "items": {"type": "string", "pattern": "^acct_[A-Za-z0-9]{1,64}$"},
                "minItems": 1,
                "maxItems": MAX_FLEET_ACCOUNTS,
                "uniqueItems": True,
            },
            {"type": "null"},
        ]
    },
    "A fleet sweep of the platform key's connected accounts: every one (all) or these, at "
    f"most {MAX_FLEET_ACCOUNTS}; each account is swept on its own, in parallel, under a parent "
    "sweep (one call of the quota).",
)


def scope_body(fields: Sequence[ScopeField]) -> dict[str, tuple[JsonObject, str]]:
    """The body fields of a scope, from the engine's table: null means "not set"."""
    return {
        field.name: ({**field.schema, "type": [field.schema["type"], "null"]}, field.meaning)
        for field in fields
    }


SCOPE_BODY = {
    **scope_body(SCOPE_FIELDS),
    "dry_run": ({"type": "boolean"}, "Only list what would be expired (default false)."),
}
SESSION_FIELDS: dict[str, tuple[JsonObject, str]] = {
    "session_id": (_STR, "The Checkout Session id (cs_...)."),
    "outcome": ({"enum": values(Outcome)}, "What the sweep did with it."),
    "error": (_OPT_STR, "Stripe's message, for a failure; the status, for already_closed."),
    "attempts": (_INT, "Requests it took."),
    "recorded_at": (_STR, "ISO 8601, UTC."),
}


def _object(fields: dict[str, tuple[JsonObject, str]], **extra: Any) -> JsonObject:
    properties = {name: {**schema, "description": text} for name, (schema, text) in fields.items()}
    properties.update(extra)
    return {"type": "object", "required": list(properties), "properties": properties}


def _success(data: JsonObject, code: int = 200) -> JsonObject:
    return {
        "type": "object",
        "required": ["status", "code", "data"],
        "properties": {"status": {"const": "success"}, "code": {"const": code}, "data": data},
    }


def _list_of(item: JsonObject) -> JsonObject:
    return {
        "type": "object",
        "required": ["object", "data", "has_more", "url"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": item},
            "has_more": {"type": "boolean", "description": "More after the last one."},
            "url": {"type": "string"},
        },
    }


def _shown_run() -> JsonObject:
    """``GET /v1/sweeps/{id}``: the run, its rate, a fleet's children and the answer."""
    return _object(
        RUN_FIELDS,
        rate={"type": "number", "description": "Sessions expired per second."},
        children={
            "type": "array",
            "items": {"$ref": "#/components/schemas/SweepRun"},
            "description": "A fleet sweep's runs, one per account (empty for any other sweep).",
        },
        result={
            "anyOf": [
                {"$ref": "#/components/schemas/SweepData"},
                {"$ref": "#/components/schemas/FleetData"},
                {"type": "null"},
            ],
            "description": "The endpoint's answer once the sweep has finished (a fleet's: "
            "each account's, and their sums).",
        },
    )


def schemas() -> JsonObject:
    run = _object(RUN_FIELDS)
    shown = _shown_run()
    accepted = _object(
        {
            "sweep_id": (_STR, "Follow it at /v1/sweeps/{sweep_id}."),
            "status": (
                {"enum": values(RunStatus)},
                "running in the background, or queued for a worker; a replayed request "
                "(Idempotency-Key) shows the sweep's status now.",
            ),
            "location": (_STR, "The same as the Location header."),
        }
    )
    return {
        "Error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"const": "error"},
                "code": {"type": "integer", "description": "The HTTP status."},
                "message": {"type": "string", "description": "What went wrong, specifically."},
            },
            "example": {"status": "error", "code": 404, "message": "User not found."},
        },
        "SweepData": dataclass_schema(SweepResult, optional=DRY_RUN_ONLY),
        "FleetData": typed_dict_schema(FleetAnswer),
        "SweepSuccess": _success({"$ref": "#/components/schemas/SweepData"}),
        "SweepAccepted": _success(accepted, 202),
        "SweepRun": run,
        "SweepRequest": {
            **_object({**SCOPE_BODY, "accounts": ACCOUNTS}),
            "required": [],
            "additionalProperties": False,
            "example": {"older_than": "2h", "metadata": {"ci_run": "1234"}, "limit": 100},
        },
        "SweepList": _success(_list_of({"$ref": "#/components/schemas/SweepRun"})),
        "SweepShown": _success(shown),
        "SessionList": _success(_list_of(_object(SESSION_FIELDS))),
        "Health": _success(_object({"alive": ({"const": True}, "The process answers.")})),
        "Ready": _success(
            _object(
                {
                    "ready": ({"const": True}, "Every dependency answered."),
                    "checks": ({"type": "object"}, "Each dependency and its state."),
                }
            )
        ),
    }


def header(description: str, schema: JsonObject | None = None, required: bool = True) -> JsonObject:
    return {"schema": schema or _INT, "description": description, "required": required}


RETRY_AFTER = header("Seconds to wait before retrying.")
QUOTA = {
    "X-RateLimit-Limit": header(f"Sweeps allowed per hour and user ({SWEEPS_PER_HOUR})."),
    "X-RateLimit-Remaining": header("Sweeps left in the moving hour."),
    "X-RateLimit-Reset": header("Epoch second when a sweep is freed again."),
}
__all__ = ["ERROR", "QUOTA", "RETRY_AFTER", "SCOPE_BODY", "header", "schemas"]
