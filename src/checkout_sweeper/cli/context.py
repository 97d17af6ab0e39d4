"""What every command needs: settings, an up-to-date database, and errors said in one line.

Every ``SweeperError`` a command lets through is said by ``say_error`` as one line on stderr
and ends the command with the class's exit code (``errors.ExitCode``); ``--verbose`` adds the
traceback behind it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from checkout_sweeper.cli.options import asked
from checkout_sweeper.errors import FolderUnusable, SweeperError
from checkout_sweeper.logs import setup_logging
from checkout_sweeper.runs.recovery import import_journals
from checkout_sweeper.settings import (
    DATABASE_URL,
    LOG_LEVEL,
    Settings,
    database_url_note,
    default_instance_path,
)
from checkout_sweeper.store.database import DEADLINE_S, Database


def say_error(err: SweeperError) -> None:
    """One line on stderr, the class's headline first; the traceback too with ``--verbose``."""
    if verbose():
        traceback.print_exception(err.__cause__ or err)
    message = f"{err.headline}: {err}" if err.headline else str(err)
    click.echo(f"error: {message}", err=True)


def verbose() -> bool:
    return bool(asked("verbose"))


def quiet() -> bool:
    return bool(asked("quiet")) and not verbose()


def command_env() -> dict[str, str]:
    """The environment as this command sees it: the process's, with what the global options
    put in place of a variable (``--database-url``)."""
    env = dict(os.environ)
    if asked("database_url"):
        env[DATABASE_URL.env] = str(asked("database_url"))
    return env


def load_settings() -> Settings:
    env = command_env()
    settings = Settings.from_env(env, instance_path=default_instance_path(env))
    setup_logging(_log_level(settings), plain=asked("log_format") != "json")
    note = database_url_note(env)
    if note is not None and not quiet():
        click.echo(note, err=True)
    return settings


def _log_level(settings: Settings) -> str:
    """Commands speak to people: warnings only (errors with --quiet), unless LOG_LEVEL asks
    or --verbose."""
    if verbose():
        return "DEBUG"
    if os.environ.get(LOG_LEVEL.env):
        return settings.server.log_level
    return "ERROR" if quiet() else "WARNING"


def open_database(settings: Settings) -> Database:
    """The configured database, migrated on the spot (idempotent, and safe when concurrent),
    with any journal a dead sweep left imported. One that cannot be used is the store's
    ``DatabaseUnavailable`` (or ``DatabaseUrlInvalid``): one line naming DATABASE_URL."""
    try:
        db = Database(settings.database_url)
    except OSError as err:
        raise _folder_unusable(err) from err
    db.deadlines.arm(DEADLINE_S)  # the command's database work; a sweep disarms it to run
    try:
        db.upgrade()
        import_journals(db, settings.journal_dir)
    except OSError as err:
        raise _folder_unusable(err) from err
    return db


def _folder_unusable(err: OSError) -> FolderUnusable:
    """The folder the OS named; whether it exists decides the exit code."""
    where = Path(err.filename or "?")
    return FolderUnusable(str(where), str(err.strerror), exists=where.exists())


def print_json(payload: Any) -> None:
    """One JSON document on one line: what scripts and ``jq`` read most easily. A reader that
    went away (``| head``) ends the output quietly; the command keeps its own exit code."""
    try:
        json.dump(payload, sys.stdout, default=str)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_gone()


def _reader_gone() -> None:
    """Nothing more reaches stdout: the rest goes nowhere, and quietly."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class StdoutConsole(Console):
    """Stdout, whose reader may go away (``| head``): the rest of the output is dropped and the
    command ends with its own exit code (rich's own console would end it with 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _reader_gone()


def table_console() -> Console:
    """Stdout for tables: the terminal's width, or a wide page when piped so nothing is cut."""
    console = StdoutConsole()
    return console if console.is_terminal else StdoutConsole(width=160)
