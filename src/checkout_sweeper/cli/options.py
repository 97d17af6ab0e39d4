"""The options every command takes, before or after its name (``checkout-sweeper -v sweep``
and ``checkout-sweeper sweep -v`` alike), kept in the context's shared ``meta``.

``--database-url`` is kept with the others; ``cli.context.command_env`` lays it over the
environment, for the settings and for the app ``serve`` builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from checkout_sweeper.settings import DATABASE_URL

LOG_FORMATS = ("text", "json")
QUIET_HELP = "Only errors and what was asked for (--json, a question); no progress."
CommandT = TypeVar("CommandT", bound=click.Command)  # a group stays a group


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """Keep a value that was given; an option left out (here or elsewhere) changes nothing."""

    def keep(context: click.Context, _param: click.Parameter, value: Any) -> None:
        if value:
            context.meta[name] = value

    return keep


def _flag(name: str, short: str, text: str) -> click.Option:
    """An on/off global option, kept in ``meta`` under its own name."""
    key = name.removeprefix("--")
    return click.Option(
        [name, short], is_flag=True, expose_value=False, callback=_remember(key), help=text
    )


def global_options() -> list[click.Option]:
    """Fresh option objects for one command (click binds each to where it is declared)."""
    return [
        _flag("--verbose", "-v", "Debug logs, and the traceback of an error."),
        _flag(
            "--quiet", "-q", "Only errors and what was asked for (--json, a question); no progress."
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(LOG_FORMATS),
            default=None,
            expose_value=False,
            callback=_remember("log_format"),
            help="Log lines as text (default) or JSON objects (serve and worker always do).",
        ),
        click.Option(
            ["--database-url"],
            default=None,
            metavar="URL",
            expose_value=False,
            callback=_remember("database_url"),
            help=f"The database instead of {DATABASE_URL.env} (never printed unmasked).",
        ),
    ]


def adopt_global_options(command: CommandT) -> CommandT:
    """Give ``command`` (and, for a group, each of its commands) the global options."""
    taken = {name for param in command.params for name in param.opts}
    for option in global_options():
        if not taken.intersection(option.opts):
            command.params.append(option)
    if isinstance(command, click.Group):
        for child in command.commands.values():
            adopt_global_options(child)
    return command


def asked(name: str) -> Any:
    """A global option's value from any command, or None."""
    context = click.get_current_context(silent=True)
    return context.meta.get(name) if context is not None else None
