"""Moments on the command line: ISO 8601 or epoch seconds, or a duration ago (``--since 2h``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from checkout_sweeper.engine.durations import EXAMPLES, parse_duration

ISO_EXAMPLE = "an ISO 8601 time (2026-11-29T12:00:00Z) or epoch seconds"


def parse_moment(value: str, option: str) -> int:
    """An epoch in seconds, or an ISO 8601 date/time (UTC when no offset is given)."""
    text = value.strip()
    if not text:
        raise click.BadParameter(f"is empty: give {ISO_EXAMPLE}", param_hint=option)
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"expected {ISO_EXAMPLE}, got {value!r}", param_hint=option
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def parse_since(value: str, option: str = "--since") -> datetime:
    """A duration ago (``2h``) or a moment, as an aware UTC time."""
    try:
        ago = parse_duration(value)
    except ValueError:
        ago = None  # not a duration: a moment, then
    if ago is not None:
        return datetime.fromtimestamp(time.time() - ago, tz=UTC)
    try:
        return datetime.fromtimestamp(parse_moment(value, option), tz=UTC)
    except click.BadParameter:
        raise click.BadParameter(
            f"expected a duration ({EXAMPLES}) or {ISO_EXAMPLE}, got {value!r}", param_hint=option
        ) from None
