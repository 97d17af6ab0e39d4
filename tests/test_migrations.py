"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from checkout_sweeper.store.database import Database, newest_revision
from checkout_sweeper.store.models import Base


def _drift(url: str) -> list:
    db = Database(url)
    db.upgrade()
    with db.engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_sqlite_schema_matches_the_models(tmp_path):
    assert _drift(f"sqlite:///{tmp_path / 'm.sqlite3'}") == []


@pytest.mark.services
def test_postgresql_schema_matches_the_models(postgres_url):
    assert _drift(postgres_url) == []


def test_the_newest_revision_is_the_one_the_migration_tool_finds():
    from importlib import resources

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    location = str(resources.files("checkout_sweeper.store") / "migrations")
    config.set_main_option("script_location", location)
    assert ScriptDirectory.from_config(config).get_current_head() == newest_revision()


def test_a_database_is_upgraded_once_and_then_seen_current(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    assert not db.schema_is_current()
    db.upgrade()
    assert db.schema_is_current()
    db.upgrade()  # a no-op that leaves it current
    assert db.schema_is_current()
