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


def test_a_removed_users_id_is_never_given_to_the_next(tmp_path):
    from checkout_sweeper.store.users import add_user, remove_user

    db = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    db.upgrade()
    alice = add_user(db, "alice@example.com", None)["id"]
    remove_user(db, alice, force=False)
    assert add_user(db, "bob@example.com", None)["id"] != alice


def test_rebuilding_users_keeps_every_runs_user(tmp_path):
    """The upgrade that makes SQLite ids never reused rebuilds the users table; the runs that
    point at a user still do afterwards, and new ids continue past the old ones."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from checkout_sweeper.store.users import add_user

    db = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    config = Config()
    location = str(resources.files("checkout_sweeper.store") / "migrations")
    config.set_main_option("script_location", location)
    with db.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.commit()
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (id, email, created_at) VALUES (7, 'a@x.co', '2026-12-01')")
        )
        connection.execute(
            text(
                "INSERT INTO sweep_runs (id, trigger, user_id, account, livemode, dry_run, status,"
                " started_at, heartbeat_at, expired_count, already_closed_count, failed_count,"
                " stripe_requests) VALUES ('r1', 'cli', 7, 'test:acct_1', 0, 0, 'succeeded',"
                " '2026-12-01', '2026-12-01', 0, 0, 0, 0)"
            )
        )
    db.upgrade()
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT user_id FROM sweep_runs")).scalar_one() == 7
    assert add_user(db, "b@x.co", None)["id"] == 8
