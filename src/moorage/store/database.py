"""``open_store``: connect, migrate, and hand out one repository per resource."""

from types import TracebackType
from typing import Self

from moorage.store import _tables
from moorage.store._engine import Database, create_database
from moorage.store._migrations import migrate
from moorage.store.async_invocations import AsyncInvocations
from moorage.store.documents import Documents
from moorage.store.endpoints import Endpoints
from moorage.store.records import EndpointConfigRecord, ModelRecord
from moorage.store.tags import Tags
from moorage.store.transform_jobs import TransformJobs


class Store:
    """The control plane's persistent state. Synchronous and thread-safe: call it from
    ``asyncio.to_thread``, never on the event loop."""

    def __init__(self, db: Database, schema_version: int) -> None:
        self._db = db
        self.schema_version = schema_version
        self.models = Documents(db, _tables.models, ModelRecord, "model")
        self.endpoint_configs = Documents(
            db, _tables.endpoint_configs, EndpointConfigRecord, "endpoint configuration"
        )
        self.endpoints = Endpoints(db)
        self.tags = Tags(db)
        self.async_invocations = AsyncInvocations(db)
        self.transform_jobs = TransformJobs(db)

    def close(self) -> None:
        """Close every pooled connection."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_store(url: str) -> Store:
    """Open the database at ``url`` (``sqlite:///path/moorage.db``, ``postgresql://…``) and
    migrate it to the schema this code knows.

    Raises ``SchemaTooNew`` if a newer moorage migrated it, ``ValueError`` for an in-memory
    SQLite URL (each connection would see its own empty database).
    """
    db = create_database(url)
    try:
        version = migrate(db)
    except BaseException:
        db.close()
        raise
    return Store(db, version)
