"""The ``checkout-sweeper`` console script: one group, one small command module per job.

Commands are imported when they run, not when the group loads, so a command pays only for
the libraries it uses (``users list`` does not import gunicorn, the SDK or the demo).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click
from dotenv import load_dotenv

from checkout_sweeper.cli.options import adopt_global_options
from checkout_sweeper.errors import AlreadySaid, SweeperError, UsageRefused

COMMANDS = {
    "serve": "checkout_sweeper.cli.serve:serve_command",
    "users": "checkout_sweeper.cli.users:users_group",
    "token": "checkout_sweeper.cli.users:token_command",
    "db": "checkout_sweeper.cli.database:db_group",
    "sweep": "checkout_sweeper.cli.sweep:sweep_command",
    "history": "checkout_sweeper.cli.history:history_group",
    "sweeps": "checkout_sweeper.cli.cancel:sweeps_group",
    "schedules": "checkout_sweeper.cli.schedules:schedules_group",
    "worker": "checkout_sweeper.cli.worker:worker_command",
    "fake-stripe": "checkout_sweeper.fake_stripe.cli:fake_stripe_command",
    "demo": "checkout_sweeper.cli.demo:demo_command",
}


NO_DATABASE = ("fake-stripe", "demo")  # the demo's database is a temporary one of its own


class LazyGroup(click.Group):
    """A group whose commands live in ``COMMANDS`` as ``module:attribute``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        adopt_global_options(command)
        if cmd_name in NO_DATABASE:  # they keep nothing: --database-url would mean nothing
            command.params = [p for p in command.params if p.name != "database_url"]
        return command

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """A bad option of the group itself (``--log-format xml``) is one line too."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as usage:
            refused = UsageRefused(_usage_text(usage))
            say_error(refused)
            raise click.exceptions.Exit(refused.exit_code) from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[ARGV] = list(args)  # what a usage error's --json answer is judged by
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """The one place a command's ``SweeperError`` becomes a line on stderr and an exit
        (no line for ``AlreadySaid``: the command said it), and the one place a command ends
        with a code other than 0 (its ``SweeperError``'s). click's usage errors (a bad option,
        before or inside the command) are ``UsageRefused`` here: one line, exit 2, and with
        ``--json`` one object with ``error`` on stdout, as every other failure."""
        try:
            return super().invoke(ctx)
        except AlreadySaid as said:
            ctx.exit(said.exit_code)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a group named alone: its help, as click shows it
        except click.UsageError as usage:
            refused = UsageRefused(_usage_text(usage))
            argv = ctx.meta.get(ARGV, [])
            if "--json" in argv[1 : argv.index("--") if "--" in argv else None]:
                _print_failure(self._failing(ctx, usage, argv), argv, str(refused))
            say_error(refused)
            ctx.exit(refused.exit_code)
        except SweeperError as err:
            say_error(err)
            ctx.exit(err.exit_code)

    def _failing(
        self, ctx: click.Context, usage: click.UsageError, argv: list[str]
    ) -> click.Command | None:
        if usage.ctx is not None and usage.ctx.command is not self:
            return usage.ctx.command
        return self.get_command(ctx, argv[0]) if argv else None


ARGV = "checkout_sweeper.argv"


def _usage_text(usage: click.UsageError) -> str:
    """click's message on one line, with where help is when a command is known."""
    text = " ".join(usage.format_message().split())
    if usage.ctx is not None:
        text += f" (see {usage.ctx.command_path} --help)"
    return text


JSON_FAILURES = {"sweep": "checkout_sweeper.cli.sweep:json_failure"}  # else {"error": ...}


def _print_failure(command: click.Command | None, argv: list[str], error: str) -> None:
    """The object a command's ``--json`` prints when it fails: its own shape when it has one
    (``JSON_FAILURES``, given the arguments), else just the error."""
    import json

    target = JSON_FAILURES.get(command.name or "") if command is not None else None
    answer: Any = {"error": error}
    if target is not None:
        module, _, attribute = target.partition(":")
        answer = getattr(importlib.import_module(module), attribute)(argv, error)
    click.echo(json.dumps(answer, default=str))


def say_error(err: SweeperError) -> None:
    """One line on stderr, the class's headline first: ``error: ...`` as text, a JSON object
    with ``--log-format json``; the traceback too with ``--verbose``."""
    import logging
    import sys
    import traceback

    from checkout_sweeper.cli.options import asked

    message = f"{err.headline}: {err}" if err.headline else str(err)
    cause = err.__cause__ or err.__context__ or err
    if asked("log_format") == "json":
        from checkout_sweeper.logs import JsonFormatter

        record = logging.makeLogRecord(
            {"name": "checkout_sweeper.cli", "levelname": "ERROR", "levelno": 40, "msg": message}
        )
        if asked("verbose"):
            record.exc_info = (type(cause), cause, cause.__traceback__)
        click.echo(JsonFormatter().format(record), err=True)
        return
    if asked("verbose"):
        traceback.print_exception(cause, file=sys.stderr)
    click.echo(f"error: {message}", err=True)


@adopt_global_options
@click.group(cls=LazyGroup)
@click.version_option(package_name="checkout-sweeper")
def main() -> None:
    """Expire every open Stripe Checkout Session of an account, safely and fast.

    A .env file in the current directory is read first; variables already set win over it.
    The options below work before or after a command's name.
    """
    load_dotenv(Path.cwd() / ".env", override=False)
