"""A request's JSON body and the sweep it asks for: the scope and dry-run flag read from the
body, every problem found named by field (a 400 names them all), nothing spent."""

from __future__ import annotations

from collections.abc import Mapping

from flask import request

from checkout_sweeper.engine.scope import EVERYTHING, parse_scope
from checkout_sweeper.errors import RequestInvalid, ScopeInvalid
from checkout_sweeper.runs.launch import Asked


def json_body() -> dict[str, object]:
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict):
        raise RequestInvalid("The body must be a JSON object (Content-Type: application/json).")
    return body


def read_asked(
    body: Mapping[str, object], *, besides: tuple[str, ...] = ()
) -> tuple[Asked, dict[str, str]]:
    """The scope and dry-run flag of a body, and every problem found, by field; the fields
    in ``besides`` are the caller's to read."""
    problems: dict[str, str] = {}
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        problems["dry_run"] = "expected true or false"
    scope = EVERYTHING
    fields = {name: value for name, value in body.items() if name not in ("dry_run", *besides)}
    try:
        scope = parse_scope(fields)
    except ScopeInvalid as err:
        problems.update(err.problems)
    return Asked(scope, dry_run is True), problems


def refuse_problems(problems: dict[str, str], what: str) -> None:
    """400 naming every bad field, when there are any."""
    if problems:
        named = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
        raise RequestInvalid(f"Invalid {what}: {named}.")
