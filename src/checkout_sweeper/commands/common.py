"""What every command needs: settings from the environment and an up-to-date database."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

from ..config import ConfigError, Settings, default_instance_path
from ..db import Database


def load_settings() -> Settings:
    try:
        return Settings.from_env(instance_path=default_instance_path())
    except ConfigError as err:
        raise click.ClickException(f"configuration: {err}") from None


def open_database(settings: Settings) -> Database:
    """The configured database, migrated on the spot (idempotent, and safe when concurrent),
    so ``users add`` works on a fresh database before anything else has run."""
    db = Database(settings.database_url)
    db.upgrade()
    return db


def print_json(payload: Any) -> None:
    """One JSON document on one line: what scripts and ``jq`` read most easily."""
    json.dump(payload, sys.stdout, default=str)
    sys.stdout.write("\n")


def table_console() -> Console:
    """Stdout for tables: the terminal's width, or a wide page when piped so nothing is cut."""
    console = Console()
    return console if console.is_terminal else Console(width=160)
