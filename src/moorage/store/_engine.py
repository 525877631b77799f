"""The database connection: engine creation, SQLite's settings, read and write transactions.

Every SQLite-only statement of the store lives here; the rest of the store is SQL that
PostgreSQL runs unchanged.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

# An execution option that marks a connection as one that will write.
_WRITE: Final = "moorage_write"
_BUSY_TIMEOUT_MS: Final = 10_000
# pg_advisory_xact_lock key for schema migrations: any constant moorage alone uses.
_MIGRATION_LOCK: Final = 0x6D6F6F72


class Database:
    """An engine with the two kinds of transaction the repositories use."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{_WRITE: True})

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads; it rolls back at the end."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes; it commits at the end, or rolls back on an exception.

        On SQLite it takes the write lock at BEGIN (``BEGIN IMMEDIATE``): a deferred transaction
        that reads and then writes fails at once with "database is locked" when another writer
        committed in between, whatever the busy timeout.
        """
        with self._writer.begin() as conn:
            yield conn

    def lock_for_migration(self, conn: Connection) -> None:
        """Serialize schema migrations of several servers opening one database at once.

        SQLite's write transaction already holds the only write lock; PostgreSQL needs a lock
        that outlives the missing ``schema_version`` table.
        """
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))

    def close(self) -> None:
        self.engine.dispose()


def create_database(url: str) -> Database:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and real BEGINs."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return Database(sa.create_engine(parsed))
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ValueError(
            f"moorage needs a SQLite database file, as in sqlite:///path/moorage.db, not {url!r}."
        )
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed)
    sa.event.listen(engine, "connect", _configure_sqlite)
    sa.event.listen(engine, "begin", _begin_sqlite)
    return Database(engine)


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    # None stops the sqlite3 module from issuing BEGIN itself (it skips it before DDL and
    # SELECT); _begin_sqlite issues it instead, so every transaction is a real one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _begin_sqlite(conn: Connection) -> None:
    is_write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if is_write else "BEGIN")
