"""Persistence of the control plane: SQLAlchemy Core tables, versioned migrations, and one
repository per resource (``Store.models``, ``.endpoint_configs``, ``.endpoints``, ``.tags``,
``.async_invocations``, ``.transform_jobs``).

Owns the SQL and every SQLite/PostgreSQL difference (all in ``_engine``). Synchronous: the
server calls it through ``asyncio.to_thread``. Statuses change only through compare-and-sets:
``Endpoints.set_status`` and ``TransformJobs.set_status``. Must not import anything above
``domain`` and ``errors``, nor know wire shapes beyond storing the documents ``api`` hands it.
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
from moorage.store.transform_jobs import TransformJobRecord, TransformJobs

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
    "TransformJobRecord",
    "TransformJobs",
    "open_store",
]
