"""Versioned schema migrations, applied in order in one transaction when a store opens.

Version N is ``STEPS[N - 1]``; ``schema_version`` has one row per applied step. A step is
frozen once released: change the schema by appending a step (and updating ``_tables``), never
by editing one. Steps are plain SQL that SQLite and PostgreSQL both run.
"""

from collections.abc import Callable, Sequence
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.store._engine import Database
from moorage.store._tables import schema_version
from moorage.store._times import now_ms

Step = Callable[[Connection], None]


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer moorage than this one."""


def _sql(*statements: str) -> Step:
    def step(conn: Connection) -> None:
        for statement in statements:
            conn.exec_driver_sql(statement)

    return step


def _document_table(name: str) -> str:
    return f"""CREATE TABLE {name} (
        name_key VARCHAR(63) NOT NULL PRIMARY KEY,
        name VARCHAR(63) NOT NULL,
        arn VARCHAR(256) NOT NULL,
        creation_time_ms BIGINT NOT NULL,
        document JSON NOT NULL
    )"""


_V1_TABLES: Final = _sql(
    _document_table("models"),
    _document_table("endpoint_configs"),
    """CREATE TABLE endpoints (
        name_key VARCHAR(63) NOT NULL PRIMARY KEY,
        name VARCHAR(63) NOT NULL,
        arn VARCHAR(256) NOT NULL,
        endpoint_config_name VARCHAR(63) NOT NULL,
        pending_config_name VARCHAR(63),
        status VARCHAR(32) NOT NULL,
        failure_reason TEXT,
        creation_time_ms BIGINT NOT NULL,
        last_modified_time_ms BIGINT NOT NULL,
        generation INTEGER NOT NULL,
        document JSON NOT NULL
    )""",
    """CREATE TABLE tags (
        resource_arn VARCHAR(256) NOT NULL,
        tag_key VARCHAR(128) NOT NULL,
        tag_value VARCHAR(256) NOT NULL,
        PRIMARY KEY (resource_arn, tag_key)
    )""",
)

# List* sort and filter by creation time (the default sort) and endpoints by status.
_V2_LISTING_INDEXES: Final = _sql(
    "CREATE INDEX ix_models_creation_time ON models (creation_time_ms)",
    "CREATE INDEX ix_endpoint_configs_creation_time ON endpoint_configs (creation_time_ms)",
    "CREATE INDEX ix_endpoints_creation_time ON endpoints (creation_time_ms)",
    "CREATE INDEX ix_endpoints_status ON endpoints (status)",
)

_V3_ASYNC_INVOCATIONS: Final = _sql(
    """CREATE TABLE async_invocations (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        endpoint_key VARCHAR(63) NOT NULL,
        received_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        lease_until_ms BIGINT,
        attempts INTEGER NOT NULL,
        request JSON NOT NULL
    )""",
    "CREATE INDEX ix_async_invocations_endpoint ON async_invocations (endpoint_key, received_ms)",
)

_V4_TRANSFORM_JOBS: Final = _sql(
    """CREATE TABLE transform_jobs (
        name_key VARCHAR(63) NOT NULL PRIMARY KEY,
        name VARCHAR(63) NOT NULL,
        arn VARCHAR(256) NOT NULL,
        status VARCHAR(32) NOT NULL,
        failure_reason TEXT,
        creation_time_ms BIGINT NOT NULL,
        last_modified_time_ms BIGINT NOT NULL,
        start_time_ms BIGINT,
        end_time_ms BIGINT,
        lease_owner VARCHAR(36),
        lease_until_ms BIGINT,
        document JSON NOT NULL
    )""",
    "CREATE INDEX ix_transform_jobs_creation_time ON transform_jobs (creation_time_ms)",
    "CREATE INDEX ix_transform_jobs_status ON transform_jobs (status)",
)

STEPS: Final[Sequence[Step]] = (
    _V1_TABLES,
    _V2_LISTING_INDEXES,
    _V3_ASYNC_INVOCATIONS,
    _V4_TRANSFORM_JOBS,
)

_VERSION_TABLE: Final = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    applied_at_ms BIGINT NOT NULL
)"""


def migrate(db: Database, steps: Sequence[Step] = STEPS) -> int:
    """Bring the database to version ``len(steps)`` and return it; a no-op when it is there.

    Raises ``SchemaTooNew`` if the database is at a later version than ``steps`` know.
    """
    latest = len(steps)
    with db.write() as conn:
        conn.exec_driver_sql(_VERSION_TABLE)
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
        if current > latest:
            url = db.engine.url.render_as_string(hide_password=True)
            raise SchemaTooNew(
                f"The database {url} is at schema version {current}, but this moorage knows "
                f"versions up to {latest} only; upgrade moorage, or point it at another database."
            )
        for version in range(current + 1, latest + 1):
            steps[version - 1](conn)
            conn.execute(schema_version.insert().values(version=version, applied_at_ms=now_ms()))
    return latest
