"""The asynchronous-inference queue: accepted requests, until their outcome is written.

A request is taken with a lease; the server processing it renews the lease while it works and
deletes the row once the result (or the failure) is stored. A server that dies leaves leases
that run out, and the requests are taken again, by it after a restart or by another server on
the same database: accepted work is never lost, and may run twice after a crash.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from moorage.store._engine import Database
from moorage.store._tables import async_invocations as _table


@dataclass(frozen=True, slots=True)
class QueuedInvocation:
    id: str
    endpoint: str  # lower-cased
    received_ms: int
    expires_ms: int
    attempts: int  # times taken, this one included
    request: dict[str, Any]


class AsyncInvocations:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self, id: str, endpoint: str, received_ms: int, expires_ms: int, request: dict[str, Any]
    ) -> None:
        with self._db.write() as conn:
            conn.execute(
                _table.insert().values(
                    id=id,
                    endpoint_key=endpoint.lower(),
                    received_ms=received_ms,
                    expires_ms=expires_ms,
                    lease_until_ms=None,
                    attempts=0,
                    request=request,
                )
            )

    def take(self, endpoint: str, limit: int, now_ms: int, lease_ms: int) -> list[QueuedInvocation]:
        """Lease up to ``limit`` of the endpoint's oldest requests nobody holds."""
        if limit < 1:
            return []
        free = sa.or_(_table.c.lease_until_ms.is_(None), _table.c.lease_until_ms < now_ms)
        with self._db.write() as conn:
            rows = conn.execute(
                sa.select(_table)
                .where(_table.c.endpoint_key == endpoint.lower(), free)
                .order_by(_table.c.received_ms)
                .limit(limit)
            ).all()
            if rows:
                conn.execute(
                    _table.update()
                    .where(_table.c.id.in_([row.id for row in rows]))
                    .values(lease_until_ms=now_ms + lease_ms, attempts=_table.c.attempts + 1)
                )
        return [
            QueuedInvocation(
                id=row.id,
                endpoint=row.endpoint_key,
                received_ms=row.received_ms,
                expires_ms=row.expires_ms,
                attempts=row.attempts + 1,
                request=dict(row.request),
            )
            for row in rows
        ]

    def renew(self, ids: Sequence[str], lease_until_ms: int) -> None:
        if ids:
            with self._db.write() as conn:
                conn.execute(
                    _table.update()
                    .where(_table.c.id.in_(list(ids)))
                    .values(lease_until_ms=lease_until_ms)
                )

    def release(self, id: str) -> None:
        """Give a request back to the queue, to be taken again (no instance could run it)."""
        with self._db.write() as conn:
            conn.execute(_table.update().where(_table.c.id == id).values(lease_until_ms=None))

    def finish(self, id: str) -> None:
        with self._db.write() as conn:
            conn.execute(_table.delete().where(_table.c.id == id))

    def forget_endpoint(self, endpoint: str) -> None:
        """Drop what a deleted endpoint had queued."""
        with self._db.write() as conn:
            conn.execute(_table.delete().where(_table.c.endpoint_key == endpoint.lower()))

    def backlog(self, endpoints: Iterable[str]) -> dict[str, tuple[int, int | None]]:
        """Per endpoint (lower-cased): requests queued or in progress, and the oldest's
        receipt time in milliseconds."""
        keys = [name.lower() for name in endpoints]
        if not keys:
            return {}
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(_table.c.endpoint_key, sa.func.count(), sa.func.min(_table.c.received_ms))
                .where(_table.c.endpoint_key.in_(keys))
                .group_by(_table.c.endpoint_key)
            ).all()
        return {key: (count, oldest) for key, count, oldest in rows}
