"""What every command needs: settings, an up-to-date database, and errors said in one line.

Exit codes (``DESIGN.md`` section 5): 2 for bad arguments or configuration, 3 when a dependency
(Stripe, the database) cannot be used, 4 when another sweep holds the account, 5 when the audit
trail could not be written. ``--verbose`` adds the traceback behind an error.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import click
from rich.console import Console
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from checkout_sweeper.logs import setup_logging
from checkout_sweeper.runs.recovery import import_journals
from checkout_sweeper.settings import ConfigError, Settings, default_instance_path
from checkout_sweeper.store.database import Database

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_BUSY = 4
EXIT_AUDIT = 5
EXIT_INTERRUPTED = 130


class Failure(click.ClickException):
    """An error said in one line, with the exit code that names its kind."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.verbose = verbose()  # read now: the context is gone when click shows the error

    def show(self, file: Any = None) -> None:
        cause = self.__cause__
        if self.verbose and cause is not None:
            traceback.print_exception(cause)
        click.echo(f"error: {self.format_message()}", err=True)


def verbose() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context and context.find_root().meta.get("verbose"))


def load_settings() -> Settings:
    try:
        settings = Settings.from_env(instance_path=default_instance_path())
    except ConfigError as err:
        raise Failure(f"configuration: {err}", EXIT_USAGE) from err
    setup_logging(_log_level(settings))
    return settings


def _log_level(settings: Settings) -> str:
    """Commands speak to people: warnings only, unless LOG_LEVEL asks or --verbose."""
    if verbose():
        return "DEBUG"
    return settings.server.log_level if os.environ.get("LOG_LEVEL") else "WARNING"


def open_database(settings: Settings) -> Database:
    """The configured database, migrated on the spot (idempotent, and safe when concurrent),
    with any journal a dead sweep left imported; one clear line if it cannot be used."""
    try:
        db = Database(settings.database_url)
    except (ArgumentError, NoSuchModuleError, ValueError) as err:
        raise Failure(f"DATABASE_URL is not a database URL: {err}", EXIT_USAGE) from err
    try:
        db.upgrade()
        import_journals(db, settings.journal_dir)
    except DBAPIError as err:
        cause = str(err.orig or err).strip().splitlines()[0]
        raise Failure(
            f"the database at {db.safe_url} (DATABASE_URL) cannot be used: {cause}",
            EXIT_UNAVAILABLE,
        ) from err
    return db


def print_json(payload: Any) -> None:
    """One JSON document on one line: what scripts and ``jq`` read most easily."""
    json.dump(payload, sys.stdout, default=str)
    sys.stdout.write("\n")


def table_console() -> Console:
    """Stdout for tables: the terminal's width, or a wide page when piped so nothing is cut."""
    console = Console()
    return console if console.is_terminal else Console(width=160)
