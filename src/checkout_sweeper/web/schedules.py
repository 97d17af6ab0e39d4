"""``/v1/schedules``: a user's recurring scoped sweeps (list, add, remove), run by workers once
per slot, as ``checkout-sweeper schedules`` adds them from the command line. Owner only: anyone
else's schedule is a 404. Managing schedules spends the generous read limit, not sweeps."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, url_for
from flask.typing import ResponseReturnValue

from checkout_sweeper.errors import NotFound, ScheduleInvalid
from checkout_sweeper.runs.checks import refuse
from checkout_sweeper.runs.schedules import (
    Cadence,
    add_schedule,
    list_schedules,
    remove_schedule,
)
from checkout_sweeper.web.body import json_body, read_asked, refuse_problems
from checkout_sweeper.web.caller import as_submitter, services
from checkout_sweeper.web.envelopes import success
from checkout_sweeper.web.state import app_state
from checkout_sweeper.web.sweeps import reading_user, reading_user_id

bp = Blueprint("schedules", __name__)


@bp.get("/schedules")
def list_own() -> ResponseReturnValue:
    """The caller's schedules, oldest first."""
    schedules = list_schedules(app_state().db, reading_user_id())
    url = url_for("schedules.list_own")
    return success({"object": "list", "data": schedules, "has_more": False, "url": url})


@bp.post("/schedules")
def add() -> ResponseReturnValue:
    """Add a schedule: ``every`` (a period) or ``cron`` (UTC), and a scope."""
    user = reading_user()
    body = json_body()
    asked, problems = read_asked(body, besides=("every", "cron"))
    cadence = None
    every, cron = _text(body, "every", problems), _text(body, "cron", problems)
    try:
        cadence = Cadence.read(every, cron)
    except ScheduleInvalid as err:
        problems.setdefault("cron" if every is None and cron is not None else "every", str(err))
    refuse_problems(problems, "schedule")
    assert cadence is not None
    refuse(as_submitter(user), services(), dry_run=asked.dry_run, busy=False)
    schedule = add_schedule(
        app_state().db,
        cadence,
        asked.scope,
        dry_run=asked.dry_run,
        user_id=user.id,
        most=app_state().settings.max_schedules,
    )
    response = success(schedule, 201)
    response.headers["Location"] = url_for("schedules.list_own") + "/" + schedule["id"]
    return response


@bp.delete("/schedules/<schedule_id>")
def remove(schedule_id: str) -> ResponseReturnValue:
    """Remove one of the caller's schedules; sweeps it started stay in the history."""
    if not remove_schedule(app_state().db, schedule_id, reading_user_id()):
        raise NotFound("Schedule not found.")
    return success({"id": schedule_id, "deleted": True})


def _text(body: Mapping[str, object], name: str, problems: dict[str, str]) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        problems[name] = "expected a string"
        return None
    return value
