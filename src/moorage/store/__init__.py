"""Persistence of the control plane: SQLAlchemy Core tables, versioned migrations, and one
repository per resource (``Store.models``, ``.endpoint_configs``, ``.endpoints``, ``.tags``,
``.async_invocations``).

Owns the SQL and every SQLite/PostgreSQL difference (all in ``_engine``). Synchronous: the
server calls it through ``asyncio.to_thread``. An endpoint's status changes only through
``Endpoints.set_status``, a compare-and-set. Must not import anything above ``domain`` and
``errors``, nor know wire shapes beyond storing the documents ``api`` hands it.
"""

from moorage.store._migrations import SchemaTooNew
from moorage.store.async_invocations import AsyncInvocations, QueuedInvocation
from moorage.store.database import Store, open_store
from moorage.store.documents import AlreadyExists, Documents
from moorage.store.endpoints import Endpoints
from moorage.store.listing import ListQuery, SortBy, SortOrder
from moorage.store.records import (
    DocumentRecord,
    EndpointConfigRecord,
    EndpointRecord,
    JsonObject,
    ModelRecord,
    Page,
    Tag,
)
from moorage.store.tags import Tags

__all__ = [
    "AlreadyExists",
    "AsyncInvocations",
    "DocumentRecord",
    "Documents",
    "EndpointConfigRecord",
    "EndpointRecord",
    "Endpoints",
    "JsonObject",
    "ListQuery",
    "ModelRecord",
    "Page",
    "QueuedInvocation",
    "SchemaTooNew",
    "SortBy",
    "SortOrder",
    "Store",
    "Tag",
    "Tags",
    "open_store",
]
