import sys

import pytest
import sqlalchemy as sa
from store_builders import T0, arn_of

from moorage.domain import ResourceKind
from moorage.store import SchemaTooNew, Store, open_store
from moorage.store._engine import create_database
from moorage.store._migrations import STEPS, migrate
from moorage.store._tables import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        # In a folder that does not exist yet: opening the store creates it.
        return f"sqlite:///{tmp_path / 'data' / 'moorage.db'}"
    return request.getfixturevalue("postgresql_url")


def _versions(url):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version FROM schema_version ORDER BY 1")).all()
    finally:
        engine.dispose()


def _inspect(url, what):
    engine = sa.create_engine(url)
    try:
        return what(sa.inspect(engine))
    finally:
        engine.dispose()


def test_a_fresh_database_gets_every_step(url):
    with open_store(url) as store:
        assert store.schema_version == len(STEPS) == 4
    assert _versions(url) == [(1,), (2,), (3,), (4,)]


def test_migrated_tables_have_the_columns_the_code_queries(url):
    open_store(url).close()
    for table in metadata.sorted_tables:
        columns = _inspect(url, lambda inspector, t=table: inspector.get_columns(t.name))
        assert [(c["name"], c["nullable"]) for c in columns] == [
            (c.name, c.nullable) for c in table.columns
        ], table.name
        primary_key = _inspect(url, lambda inspector, t=table: inspector.get_pk_constraint(t.name))
        assert primary_key["constrained_columns"] == [c.name for c in table.primary_key]


def test_sqlite_runs_in_wal_mode(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'moorage.db'}") as store, store._db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_reopening_applies_nothing_and_keeps_the_data(url):
    with open_store(url) as store:
        store.models.create("m", arn_of(ResourceKind.MODEL, "m"), {"ModelName": "m"}, T0)
    with open_store(url) as store:
        assert store.schema_version == 4
        assert store.models.get("m") is not None
    assert _versions(url) == [(1,), (2,), (3,), (4,)]


def test_a_version_one_database_is_upgraded_with_its_data(url):
    db = create_database(url)
    assert migrate(db, STEPS[:1]) == 1
    Store(db, 1).models.create("m", arn_of(ResourceKind.MODEL, "m"), {"ModelName": "m"}, T0)
    db.close()
    assert "ix_models_creation_time" not in {
        i["name"] for i in _inspect(url, lambda inspector: inspector.get_indexes("models"))
    }
    with open_store(url) as store:
        assert store.schema_version == 4
        assert store.models.get("M").document == {"ModelName": "m"}
    indexes = _inspect(url, lambda inspector: inspector.get_indexes("endpoints"))
    assert {i["name"] for i in indexes} == {"ix_endpoints_creation_time", "ix_endpoints_status"}


def test_a_database_newer_than_the_code_is_refused(url):
    db = create_database(url)
    migrate(db, [*STEPS, lambda conn: None])
    db.close()
    with pytest.raises(SchemaTooNew, match="schema version 5, but this moorage knows versions up"):
        open_store(url)
    assert _versions(url) == [(1,), (2,), (3,), (4,), (5,)]


def test_an_older_code_refuses_a_database_it_did_not_migrate(url):
    open_store(url).close()
    db = create_database(url)
    try:
        with pytest.raises(SchemaTooNew, match="up to 1 only; upgrade moorage"):
            migrate(db, STEPS[:1])
    finally:
        db.close()


def test_a_failing_step_leaves_the_database_as_it_was(url):
    open_store(url).close()

    def broken(conn):
        conn.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("step failed")

    db = create_database(url)
    try:
        with pytest.raises(RuntimeError, match="step failed"):
            migrate(db, [*STEPS, broken])
    finally:
        db.close()
    assert _versions(url) == [(1,), (2,), (3,), (4,)]
    assert "half_done" not in _inspect(url, lambda inspector: inspector.get_table_names())


@pytest.mark.parametrize("memory_url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(memory_url):
    with pytest.raises(ValueError, match="needs a SQLite database file"):
        open_store(memory_url)


def test_a_bare_postgresql_url_opens_with_psycopg(postgresql_url):
    bare = sa.make_url(postgresql_url).set(drivername="postgresql")
    with open_store(bare.render_as_string(hide_password=False)) as store:
        assert store._db.engine.driver == "psycopg"


def test_a_missing_postgresql_driver_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ValueError, match=r"pip install 'moorage\[postgresql\]'"):
        open_store("postgresql://moorage@db.example/moorage")


@pytest.mark.parametrize(
    ("bad_url", "message"),
    [
        ("mysql://moorage:secret@db.example/moorage", "SQLite or PostgreSQL, not mysql"),
        ("db.example:5432", "is not a database URL"),
    ],
)
def test_a_url_of_no_supported_database_is_refused(bad_url, message):
    with pytest.raises(ValueError, match=message) as caught:
        open_store(bad_url)
    assert "secret" not in str(caught.value)
