"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from checkout_sweeper.db import Database
from checkout_sweeper.models import Base


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
