"""``db upgrade``: apply the Alembic migrations to the configured database."""

from __future__ import annotations

import click

from checkout_sweeper.cli.context import load_settings, open_database


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def upgrade() -> None:
    """Bring the schema up to date (idempotent; safe from several instances at once)."""
    db = open_database(load_settings())
    click.echo(f"database at the newest schema ({db.dialect})")
