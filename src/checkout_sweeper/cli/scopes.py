"""Scope options, the same on ``sweep`` and ``schedules add``, read by the engine's one scope
parser so that a bad value gets the message the API gives, under the option's name."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from checkout_sweeper.cli.moments import parse_moment
from checkout_sweeper.engine.scope import Scope, parse_scope
from checkout_sweeper.errors import ScopeInvalid

Command = TypeVar("Command", bound=Callable[..., Any])

OPTIONS = (
    click.option(
        "--created-before",
        default=None,
        metavar="ISO|EPOCH",
        help="Only sessions created before this moment (ISO 8601 or epoch seconds).",
    ),
    click.option(
        "--older-than",
        default=None,
        metavar="DURATION",
        help="Only sessions older than this (90s, 30m, 2h, 1d) when the sweep starts.",
    ),
    click.option(
        "--customer", default=None, metavar="cus_...", help="Only this customer's sessions."
    ),
    click.option(
        "--payment-link",
        default=None,
        metavar="plink_...",
        help="Only sessions created through this payment link.",
    ),
    click.option(
        "--metadata",
        multiple=True,
        metavar="KEY=VALUE",
        help="Only sessions whose metadata has KEY set to VALUE; repeat to require several.",
    ),
    click.option(
        "--limit",
        default=None,
        type=int,
        metavar="N",
        help="Expire at most N sessions, newest first (the order of Stripe's list).",
    ),
)


SCOPE_PARAMS = ("created_before", "older_than", "customer", "payment_link", "metadata", "limit")


def scope_options(command: Command) -> Command:
    """The scope options on ``command``, which receives them as one ``scope`` argument."""

    @functools.wraps(command)
    def with_scope(**params: Any) -> Any:
        written = [params.pop(name) for name in SCOPE_PARAMS]
        return command(scope=scope_from_options(*written), **params)

    for option in reversed(OPTIONS):
        with_scope = option(with_scope)
    return cast(Command, with_scope)


def scope_from_options(
    created_before: str | None,
    older_than: str | None,
    customer: str | None,
    payment_link: str | None,
    metadata: tuple[str, ...],
    limit: int | None,
) -> Scope:
    """The scope the options ask for; ``click.BadParameter`` names the first bad option."""
    cutoff = None if created_before is None else parse_moment(created_before, "--created-before")
    written: dict[str, object] = {
        "created_before": cutoff,
        "older_than": older_than.strip().lower() if older_than else older_than,
        "customer": customer,
        "payment_link": payment_link,
        "metadata": _pairs(metadata) if metadata else None,
        "limit": limit,
    }
    try:
        return parse_scope(written)
    except ScopeInvalid as err:
        field, problem = next(iter(err.problems.items()))
        raise click.BadParameter(problem, param_hint="--" + field.replace("_", "-")) from None


def _pairs(written: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for pair in written:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--metadata")
        pairs[key] = value
    return pairs
