"""Scope options, the same on ``sweep`` and ``schedules add``, built from the engine's table of
scope fields and read by its one scope parser, so that a bad value gets the message the API
gives, under the option's name."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from checkout_sweeper.cli.moments import parse_moment
from checkout_sweeper.engine.scope import SCOPE_FIELDS, Form, Scope, ScopeField, parse_scope
from checkout_sweeper.errors import ScopeInvalid

Command = TypeVar("Command", bound=Callable[..., Any])


def scope_option(field: ScopeField) -> Callable[[Command], Command]:
    """The click option of a scope field: repeated for pairs, a whole number for a count."""
    if field.form is Form.PAIRS:
        return click.option(field.option, multiple=True, metavar=field.metavar, help=field.help)
    kind = int if field.form is Form.COUNT else None
    return click.option(
        field.option, default=None, type=kind, metavar=field.metavar, help=field.help
    )


def scope_options(command: Command) -> Command:
    """The scope options on ``command``, which receives them as one ``scope`` argument."""

    @functools.wraps(command)
    def with_scope(**params: Any) -> Any:
        written = {field.name: params.pop(field.name) for field in SCOPE_FIELDS}
        return command(scope=scope_from_options(written), **params)

    for field in reversed(SCOPE_FIELDS):
        with_scope = scope_option(field)(with_scope)
    return cast(Command, with_scope)


def scope_from_options(written: dict[str, Any]) -> Scope:
    """The scope the options ask for; ``click.BadParameter`` names the first bad option."""
    read = {field.name: _read(field, written[field.name]) for field in SCOPE_FIELDS}
    try:
        return parse_scope(read, now=time.time())
    except ScopeInvalid as err:
        name, problem = next(iter(err.problems.items()))
        option = next(field.option for field in SCOPE_FIELDS if field.name == name)
        raise click.BadParameter(problem, param_hint=option) from None


def _read(field: ScopeField, value: Any) -> Any:
    """An option's value as the parser takes it: a moment as epoch seconds, pairs as an
    object, a duration in lower case; None when not given."""
    if value is None or value == ():  # not given; an empty value is the parser's to refuse
        return None
    if field.form is Form.MOMENT:
        return parse_moment(value, field.option)
    if field.form is Form.PAIRS:
        return _pairs(value, field.option)
    if field.form is Form.DURATION:
        return value.strip().lower() if value else value
    return value


def _pairs(written: tuple[str, ...], option_name: str) -> dict[str, str]:
    pairs = {}
    for pair in written:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option_name)
        pairs[key] = value
    return pairs
