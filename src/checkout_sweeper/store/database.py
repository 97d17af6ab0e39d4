"""The database handle: an engine, a session factory, and ``upgrade()`` to the latest schema.

Plain SQLAlchemy (no Flask extension) so that the command line, the sweep's audit writer and the
web app share one way in. SQLite gets WAL and a busy timeout so the API and a CLI sweep can use
the same file; PostgreSQL serialises concurrent migrations with an advisory lock.

SQLAlchemy's errors stop here: ``translated`` turns them into the error tree's (the database
out of reach or late, a statement refused, a duplicate row) for every way into the database,
so no caller needs to know the driver to decide what to do.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import (
    CursorResult,
    Engine,
    Executable,
    create_engine,
    event,
    exc,
    inspect,
    text,
)
from sqlalchemy.orm import Session, sessionmaker

from checkout_sweeper.errors import (
    DatabaseUnavailable,
    DatabaseUrlInvalid,
    DuplicateRow,
    StatementRefused,
    SweeperError,
)
from checkout_sweeper.settings import masked
from checkout_sweeper.store.deadlines import Deadlines

log = logging.getLogger("checkout_sweeper.store")
_MIGRATION_LOCK_ID = 0x5EE9_C0DE  # pg_advisory_lock key for "checkout-sweeper migrations"
CONNECT_TIMEOUT_S = 3
DEADLINE_S = 10  # a request's (or a command's) database work before a sweep, at most
STATEMENT_TIMEOUT_MS = 5000
# A PostgreSQL that refuses, drops packets or waits on a lock becomes an error in seconds:
# connecting is bounded, a statement is cancelled by the server after 5 s, and keepalives plus
# tcp_user_timeout notice a peer that stopped acknowledging.
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 5000,
    "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout=3000",
}
# The server, not the statement: it cannot be reached, dropped the connection, or the pool
# waited too long for one.
OUT_OF_REACH = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError)
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE
SQLITE_DUPLICATES = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


@functools.cache
def newest_revision() -> str:
    """The newest migration's revision: migrations are named ``NNNN_what.py`` with revision
    ``NNNN`` (a test holds this to what the migration tool computes)."""
    versions = resources.files("checkout_sweeper.store") / "migrations" / "versions"
    return max(f.name[:4] for f in versions.iterdir() if f.name[:4].isdigit())


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One per process: ``session()`` for units of work, ``upgrade()`` for migrations."""

    def __init__(self, url: str) -> None:
        """``DatabaseUrlInvalid`` for a URL SQLAlchemy cannot use; ``OSError`` for a SQLite
        file whose folder cannot be made."""
        self.url = url
        self.deadlines = Deadlines()
        self.sqlite_file: Path | None = None  # the database file, for SQLite on disk
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                self.sqlite_file = Path(path)
                _private_file(self.sqlite_file)
            self.engine: Engine = _engine(
                url, connect_args={"check_same_thread": False, "timeout": 10}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = _engine(
                url,
                pool_timeout=CONNECT_TIMEOUT_S * 2,
                connect_args=POSTGRES_CONNECT_ARGS if url.startswith("postgresql") else {},
            )
            self.deadlines.watch(self.engine)  # the pool's pre-ping too, droppable
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error; its errors translated."""
        with translated(self), self._sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest migration; safe to run from many processes at once.
        A schema already there is the common case: it is checked with one query, so that a
        command does not pay for loading the migration tooling (half a second) on every run."""
        with translated(self):
            if self.schema_is_current():
                return
            with self._sqlite_migration_lock():
                if not self.schema_is_current():  # another process may have done it meanwhile
                    self._migrate()

    @contextmanager
    def _sqlite_migration_lock(self) -> Iterator[None]:
        """Processes starting together on one SQLite file (``serve`` and ``worker``) migrate
        one at a time: a lock file beside the database. PostgreSQL takes an advisory lock in
        ``_migrate`` instead. The holder removes the file before letting go, so none is left in
        the data folder; a waiter that then locked a removed file tries again."""
        if self.sqlite_file is None:
            yield
            return
        path = f"{self.sqlite_file}.migrating"
        while True:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                    break  # the file others lock too
            except FileNotFoundError:  # its last holder removed it: lock the new one
                log.debug("migration lock %s was removed by its holder; locking anew", path)
            os.close(descriptor)
        try:
            yield
        finally:
            with suppress(OSError):
                os.unlink(path)
            os.close(descriptor)  # closing releases the lock

    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option(
            "script_location", str(resources.files("checkout_sweeper.store") / "migrations")
        )
        with self.engine.connect() as connection:
            if self.dialect == "sqlite":
                # Rebuilding a table drops the old one: with foreign keys on, that would set
                # every run's user_id to NULL. SQLite's own advice: keys off while migrating.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            if self.dialect == "postgresql":
                # Another instance may hold the lock while it migrates: wait for it.
                connection.execute(text("SET statement_timeout = 0; SET lock_timeout = 0"))
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                if self.dialect == "sqlite":
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                if self.dialect == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                    )
                    connection.execute(text("RESET statement_timeout; RESET lock_timeout"))
                    connection.commit()

    def schema_is_current(self) -> bool:
        with translated(self), self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return False
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return set(found) == {newest_revision()}

    @property
    def safe_url(self) -> str:
        """The URL with its password and secret query parameters masked, for messages."""
        return masked(self.url)

    def dispose(self) -> None:
        self.engine.dispose()


def _engine(url: str, **options: Any) -> Engine:
    """The engine; a URL that passed the settings' checks but that SQLAlchemy cannot use (a
    port that is not a number) is the setting's fault, said as such."""
    try:
        return create_engine(url, **options)
    except (exc.ArgumentError, ValueError) as err:  # NoSuchModuleError is an ArgumentError
        raise DatabaseUrlInvalid(str(err)) from err


@contextmanager
def translated(db: Database) -> Iterator[None]:
    """SQLAlchemy's errors become the error tree's here, once for every way into the
    database, as the Stripe adapter does for the SDK: callers catch what they can act on
    (``DatabaseUnavailable``, ``DuplicateRow``) and never the driver's classes."""
    try:
        yield
    except exc.SQLAlchemyError as err:
        raise _translation(db, err) from err


def _translation(db: Database, err: exc.SQLAlchemyError) -> SweeperError:
    """Past this thread's deadline any error is the database answering too late: the
    dropped connection's error says nothing more."""
    if db.deadlines.passed():
        return DatabaseUnavailable(db.safe_url, database_cause(err), late_s=DEADLINE_S)
    if isinstance(err, OUT_OF_REACH):
        return DatabaseUnavailable(db.safe_url, database_cause(err))
    if isinstance(err, exc.IntegrityError) and _duplicate(err):
        return DuplicateRow(db.safe_url, database_cause(err))
    return StatementRefused(db.safe_url, database_cause(err))


def _duplicate(err: exc.IntegrityError) -> bool:
    """A unique key's violation (not a foreign key's or a NOT NULL's), in either dialect."""
    code = getattr(err.orig, "sqlstate", None) or getattr(err.orig, "pgcode", None)
    if code is not None:
        return bool(code == UNIQUE_VIOLATION)
    return getattr(err.orig, "sqlite_errorname", None) in SQLITE_DUPLICATES


def _private_file(path: Path) -> None:
    """The SQLite file (users' e-mails, the audit trail) and a folder made for it are this
    user's alone: 0600 and 0700 when created here (SQLite's -wal and -shm files follow)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def rows_changed(session: Session, statement: Executable) -> int:
    """How many rows an UPDATE or DELETE matched: the atomic answer leases rely on."""
    result = session.execute(statement)
    assert isinstance(result, CursorResult)  # what every DML statement returns
    return result.rowcount


def database_cause(err: Exception) -> str:
    """The driver's own first line (SQLAlchemy's wrapping adds the statement and a link)."""
    return str(getattr(err, "orig", None) or err).strip().splitlines()[0]
