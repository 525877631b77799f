"""The database connection: engine creation, each engine's settings, read and write transactions.

Every statement and setting that is SQLite's or PostgreSQL's alone lives here; the rest of the
store is SQL that both run unchanged.
"""

import sqlite3
import time
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
# pg_advisory_xact_lock key of write transactions: any constant moorage alone uses.
_WRITE_LOCK: Final = 0x6D6F6F72


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

        Writers run one at a time on both engines; the store relies on it where it reads and
        then writes (deleting a resource and its tags, replacing a tag, migrating). SQLite takes
        its write lock at BEGIN (``BEGIN IMMEDIATE``): a deferred transaction that reads and then
        writes fails at once with "database is locked" when another writer committed in
        between, whatever the busy timeout. PostgreSQL takes an advisory lock until the end: at
        READ COMMITTED, two deletes of one model would both report it deleted, two writes of one
        tag would both insert it, two servers would both create a new database's tables.
        """
        with self._writer.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def create_database(url: str) -> Database:
    """An engine for ``url``, a SQLite or a PostgreSQL one. SQLite gets WAL, foreign keys, a
    busy timeout and real BEGINs; PostgreSQL gets psycopg 3 for a bare ``postgresql://``."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"{url!r} is not a database URL") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return Database(_postgresql_engine(parsed))
    if backend != "sqlite":
        raise ValueError(
            f"moorage keeps its state in SQLite or PostgreSQL, not {backend}: "
            f"{parsed.render_as_string(hide_password=True)}"
        )
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
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    # Switching a file to WAL needs it to itself, and SQLite refuses at once, without waiting
    # busy_timeout, when another connection holds it: processes opening a fresh database
    # together race here. Once one has switched, the mode is the file's and the rest succeed.
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _begin_sqlite(conn: Connection) -> None:
    is_write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if is_write else "BEGIN")


def _postgresql_engine(url: sa.URL) -> Engine:
    if url.drivername == "postgresql":
        # SQLAlchemy's driver for a bare postgresql:// is psycopg2; the postgresql extra
        # installs psycopg 3.
        url = url.set(drivername="postgresql+psycopg")
    try:
        # Pre-ping: pooled connections die when PostgreSQL restarts or fails over, and the
        # server outlives that.
        engine = sa.create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"{url.render_as_string(hide_password=True)} needs the Python module {exc.name}, "
            "which is not installed; pip install 'moorage[postgresql]' installs psycopg, "
            "the driver of postgresql:// URLs."
        ) from exc
    sa.event.listen(engine, "begin", _begin_postgresql)
    return engine


def _begin_postgresql(conn: Connection) -> None:
    if conn.get_execution_options().get(_WRITE, False):
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_WRITE_LOCK)))
