"""The OpenAPI paths and schemas of ``/v1/schedules``."""

from __future__ import annotations

from checkout_sweeper.engine.scope import AGE
from checkout_sweeper.runs.quota import READS_PER_MINUTE
from checkout_sweeper.runs.schedules import MAX_EVERY_S, SCHEDULE_ID
from checkout_sweeper.store.models import CRON_MAX
from checkout_sweeper.vocabulary import JsonObject
from checkout_sweeper.web.body import MAX_BODY_BYTES, MAX_DEPTH
from checkout_sweeper.web.openapi.components import ERROR, RETRY_AFTER, SCOPE_BODY, header

_OPT_STR = {"type": ["string", "null"]}
SCHEDULE_FIELDS: dict[str, tuple[JsonObject, str]] = {
    "id": ({"type": "string"}, "The schedule id (sch_...)."),
    "user_id": ({"type": ["integer", "null"]}, "Its owner (null: added on the command line)."),
    "every": ({"type": ["integer", "null"]}, "The period in seconds, or null for a cron one."),
    "cron": (_OPT_STR, "The cron expression (UTC), or null for a periodic one."),
    "scope": ({"type": "object"}, "The scope each run sweeps, as a sweep shows it."),
    "dry_run": ({"type": "boolean"}, "Each run only lists."),
    "created_at": ({"type": "string"}, "ISO 8601, UTC; periods count from here."),
    "last_slot_at": (_OPT_STR, "The last slot a worker claimed and started, ISO 8601 UTC."),
}
CADENCE: dict[str, tuple[JsonObject, str]] = {
    "every": (
        {"type": ["string", "null"], "pattern": f"^{AGE.pattern}$"},
        f"A period from 1m to {MAX_EVERY_S // 86400}d (15m, 1h, 1d); give this or cron.",
    ),
    "cron": (
        {"type": ["string", "null"], "maxLength": CRON_MAX},
        'Five cron fields in UTC ("0 3 * * *") that name a date that exists; give this or every.',
    ),
}
BAD_BODY = (
    "The body is not one JSON object (a key twice, NaN, nested more than "
    f"{MAX_DEPTH} levels), or fields are bad (all named)."
)
TOO_LARGE = f"The body is larger than {MAX_BODY_BYTES // 1024} KB."
STATUSES = {
    "400": BAD_BODY,
    "401": "No or malformed Bearer header, or the token is invalid.",
    "404": "No such user, or no such schedule of this user.",
    "429": f"More than {READS_PER_MINUTE} requests by this user in a minute.",
    "500": "Anything unexpected.",
    "503": "The rate-limit storage (Redis) cannot be reached.",
}

REFUSALS = {  # what adding a schedule is refused for, as a sweep is on every door
    status: {"description": text, "content": {"application/json": {"schema": ERROR}}}
    for status, text in (
        ("403", "The configured Stripe key is live-mode and SWEEPER_ALLOW_LIVE_MODE is not set."),
        ("409", "The user already has a stripe_customer_id: the spec's rule, on every door."),
    )
}


def _fields(fields: dict[str, tuple[JsonObject, str]]) -> JsonObject:
    return {name: {**schema, "description": text} for name, (schema, text) in fields.items()}


def _wrapped(data: JsonObject, code: int) -> JsonObject:
    return {
        "type": "object",
        "required": ["status", "code", "data"],
        "properties": {"status": {"const": "success"}, "code": {"const": code}, "data": data},
    }


def schedule_schemas() -> JsonObject:
    schedule = {
        "type": "object",
        "required": list(SCHEDULE_FIELDS),
        "properties": _fields(SCHEDULE_FIELDS),
    }
    listed = {
        "type": "object",
        "required": ["object", "data", "has_more", "url"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}},
            "has_more": {"type": "boolean"},
            "url": {"type": "string"},
        },
    }
    removed = {
        "type": "object",
        "required": ["id", "deleted"],
        "properties": {"id": {"type": "string"}, "deleted": {"const": True}},
    }
    return {
        "Schedule": schedule,
        "ScheduleCreated": _wrapped({"$ref": "#/components/schemas/Schedule"}, 201),
        "ScheduleList": _wrapped(listed, 200),
        "ScheduleRemoved": _wrapped(removed, 200),
        "ScheduleRequest": {
            "type": "object",
            "properties": _fields({**CADENCE, **SCOPE_BODY}),
            "additionalProperties": False,
            "example": {"every": "15m", "older_than": "2h", "metadata": {"env": "staging"}},
        },
    }


def _responses(code: str, text: str, schema: str) -> JsonObject:
    def answer(description: str, ref: JsonObject = ERROR) -> JsonObject:
        return {"description": description, "content": {"application/json": {"schema": ref}}}

    responses = {status: answer(description) for status, description in STATUSES.items()}
    responses[code] = answer(text, {"$ref": f"#/components/schemas/{schema}"})
    responses["429"]["headers"] = {"Retry-After": RETRY_AFTER}
    responses["503"]["headers"] = {"Retry-After": RETRY_AFTER}
    return responses


def schedule_paths(prefix: str) -> JsonObject:
    created = _responses("201", "The schedule; workers start its sweeps.", "ScheduleCreated")
    created["201"]["headers"] = {"Location": header("The schedule.", {"type": "string"})}
    created.update(REFUSALS)
    created["413"] = {"description": TOO_LARGE, "content": {"application/json": {"schema": ERROR}}}
    secured: JsonObject = {"security": [{"bearer": []}]}
    schedule_id = {
        "name": "schedule_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{SCHEDULE_ID.pattern}$"},
        "example": "sch_0a1b2c3d4e5f60718293",
    }
    return {
        f"{prefix}/schedules": {
            "get": {
                "summary": "The caller's schedules, oldest first",
                "operationId": "listSchedules",
                **secured,
                "responses": _responses("200", "A list of schedules.", "ScheduleList"),
            },
            "post": {
                "summary": "Add a recurring scoped sweep (every period, or on a cron)",
                "operationId": "createSchedule",
                **secured,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ScheduleRequest"}
                        }
                    },
                },
                "responses": created,
            },
        },
        f"{prefix}/schedules/{{schedule_id}}": {
            "delete": {
                "summary": "Remove one of the caller's schedules",
                "operationId": "removeSchedule",
                **secured,
                "parameters": [schedule_id],
                "responses": _responses("200", "Removed.", "ScheduleRemoved"),
            }
        },
    }
