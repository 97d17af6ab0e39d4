"""A request's JSON body and the sweep it asks for: the scope and dry-run flag read from the
body, every problem found named by field (a 400 names them all), nothing spent.

The body is read whatever its framing (``Content-Length`` or ``Transfer-Encoding: chunked``),
up to ``MAX_BODY_BYTES`` (413 beyond), as strict JSON: one object, each key once, no ``NaN``
or ``Infinity``, nested at most ``MAX_DEPTH`` levels. No body at all is ``{}``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, NoReturn

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from checkout_sweeper.engine.scope import EVERYTHING, FIELDS, parse_scope
from checkout_sweeper.errors import BodyTooLarge, RequestInvalid, ScopeInvalid
from checkout_sweeper.runs.launch import Asked

# A body holds a scope and a cadence: a fleet of 1,000 accounts (Stripe's ids) is about 25 KB.
MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 8  # a scope nests two levels (the body, metadata); deeper is no body we take
NOT_JSON = "The body must be a JSON object (Content-Type: application/json)"


def json_body() -> dict[str, Any]:
    """The request's JSON object, or ``{}`` when it has no body; a 400 or 413 naming what is
    wrong with any other."""
    raw = _raw_body()
    if not raw:
        return {}
    if not request.is_json:
        raise RequestInvalid(f"{NOT_JSON}; got Content-Type {request.mimetype or 'none'!r}.")
    try:
        body = json.loads(raw, object_pairs_hook=_each_key_once, parse_constant=_no_constant)
    except RecursionError:
        _too_deep()
    except ValueError as err:  # not JSON, or not UTF-8
        raise RequestInvalid(f"{NOT_JSON}: {err}.") from None
    if not isinstance(body, dict):
        raise RequestInvalid(f"{NOT_JSON}; got {_kind(body)}.")
    if _depth(body) > MAX_DEPTH:
        _too_deep()
    return body


def _kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    names = {list: "an array", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), "a value")


def _raw_body() -> bytes:
    """The body's bytes: gunicorn and werkzeug's server both de-chunk into ``wsgi.input`` and
    say so (``wsgi.input_terminated``), so a chunked body reads as one with a length. Reading
    stops one byte past the cap: that byte says the body is over it."""
    request.max_content_length = MAX_BODY_BYTES + 1
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:  # a Content-Length over the cap: nothing was read
        raw = None
    if raw is None or len(raw) > MAX_BODY_BYTES:
        most = f"{MAX_BODY_BYTES // 1024} KB ({MAX_BODY_BYTES} bytes)"
        raise BodyTooLarge(f"The request body is larger than {most}, the most it may be.")
    return raw


def _each_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of the body: a key given twice is refused (JSON parsers disagree on which
    one wins, so ``"dry_run": true, "dry_run": false`` would be a guess)."""
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise RequestInvalid(f"The body gives the key {key!r} more than once; give it once.")
        body[key] = value
    return body


def _no_constant(name: str) -> NoReturn:
    raise RequestInvalid(f"{NOT_JSON}: {name} is not a JSON number.")


def _too_deep() -> NoReturn:
    raise RequestInvalid(f"The body nests arrays or objects more than {MAX_DEPTH} levels deep.")


def _depth(value: Any) -> int:
    """How many arrays and objects deep ``value`` nests (without recursing)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, dict | list):
            continue
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


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
        scope = parse_scope(fields, now=time.time())
    except ScopeInvalid as err:
        known = ", ".join((*besides, "dry_run", *FIELDS))
        for name, why in err.problems.items():  # an unknown field: every field the body takes
            problems[name] = f"unknown field; the body takes {known}" if name not in FIELDS else why
    return Asked(scope, dry_run is True), problems


def refuse_problems(problems: dict[str, str], what: str) -> None:
    """400 naming every bad field, when there are any."""
    if problems:
        named = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
        raise RequestInvalid(f"Invalid {what}: {named}.")
