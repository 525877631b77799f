"""Transform jobs, and the one place a transform job's status is written.

Status changes are compare-and-sets (``set_status``). A server runs an InProgress job only
while it holds the job's lease (``take``, ``renew``): two servers on one database never run the
same job at once, and the job of a server that died is taken again once its lease runs out.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from moorage.domain import TransformJobStatus, advance
from moorage.store._engine import Database
from moorage.store._tables import transform_jobs as _table
from moorage.store._times import from_ms, now_ms, to_ms
from moorage.store.documents import insert_unique
from moorage.store.listing import ListQuery, select_page
from moorage.store.records import JsonObject, Page

S = TransformJobStatus


@dataclass(frozen=True, kw_only=True)
class TransformJobRecord:
    """A stored transform job; ``document`` is the CreateTransformJob input (without tags),
    plus ``Model``: the model as it was when the job was created."""

    name: str
    arn: str
    status: TransformJobStatus
    creation_time: datetime
    last_modified_time: datetime
    document: JsonObject
    failure_reason: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    lease_owner: str | None = None
    lease_until_ms: int | None = None


class TransformJobs:
    """The stored transform jobs. Names are case-insensitive."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, name: str, arn: str, document: JsonObject, creation_time: datetime
    ) -> TransformJobRecord:
        """Store a new job, InProgress; ``AlreadyExists`` if the name is taken."""
        at = to_ms(creation_time)
        values: dict[str, Any] = {
            "name_key": name.lower(),
            "name": name,
            "arn": arn,
            "status": str(S.IN_PROGRESS),
            "failure_reason": None,
            "creation_time_ms": at,
            "last_modified_time_ms": at,
            "start_time_ms": None,
            "end_time_ms": None,
            "lease_owner": None,
            "lease_until_ms": None,
            "document": dict(document),
        }
        with self._db.write() as conn:
            insert_unique(conn, _table.insert().values(values), "transform job", arn)
        return _from_row(values)

    def get(self, name: str) -> TransformJobRecord | None:
        with self._db.read() as conn:
            row = conn.execute(sa.select(_table).where(_table.c.name_key == name.lower())).first()
        return None if row is None else _from_row(row._mapping)

    def active(self) -> list[TransformJobRecord]:
        """Jobs InProgress or Stopping, oldest first (the runner's pass over them)."""
        statuses = [str(S.IN_PROGRESS), str(S.STOPPING)]
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(_table)
                .where(_table.c.status.in_(statuses))
                .order_by(_table.c.creation_time_ms, _table.c.name_key)
            ).all()
        return [_from_row(row._mapping) for row in rows]

    def list(self, query: ListQuery) -> Page[TransformJobRecord]:
        with self._db.read() as conn:
            rows, next_token = select_page(conn, _table, query)
        return Page(tuple(_from_row(row._mapping) for row in rows), next_token)

    def set_status(
        self,
        name: str,
        expected: TransformJobStatus,
        new: TransformJobStatus,
        *,
        failure_reason: str | None = None,
        at_ms: int | None = None,
    ) -> bool:
        """Move job ``name`` from ``expected`` to ``new`` if it is still in ``expected``.

        The only writer of a job's status. It guards the race between StopTransformJob
        (InProgress -> Stopping) and the runner finishing the job (InProgress -> Completed):
        ``UPDATE … WHERE status = :expected`` lets one through, and the other gets False.
        A final status sets the end time and gives up the lease. Raises ``InvalidTransition``
        if the transition table does not allow ``expected -> new``.
        """
        advance(expected, new)
        at = now_ms() if at_ms is None else at_ms
        values: dict[str, object] = {
            "status": str(new),
            "failure_reason": failure_reason,
            "last_modified_time_ms": at,
        }
        if new in (S.COMPLETED, S.FAILED, S.STOPPED):
            values.update(end_time_ms=at, lease_owner=None, lease_until_ms=None)
        statement = (
            _table.update()
            .where(_table.c.name_key == name.lower(), _table.c.status == str(expected))
            .values(**values)
        )
        with self._db.write() as conn:
            return conn.execute(statement).rowcount == 1

    def take(self, name: str, owner: str, now: int, lease_ms: int) -> bool:
        """Lease job ``name`` to ``owner`` if it is InProgress and no one else holds it; the
        start time is set on the first take. False if it is not to be had."""
        free = sa.or_(
            _table.c.lease_until_ms.is_(None),
            _table.c.lease_until_ms < now,
            _table.c.lease_owner == owner,
        )
        statement = (
            _table.update()
            .where(_table.c.name_key == name.lower(), _table.c.status == str(S.IN_PROGRESS), free)
            .values(
                lease_owner=owner,
                lease_until_ms=now + lease_ms,
                start_time_ms=sa.func.coalesce(_table.c.start_time_ms, now),
            )
        )
        with self._db.write() as conn:
            return conn.execute(statement).rowcount == 1

    def renew(self, names: Sequence[str], owner: str, lease_until_ms: int) -> None:
        self._write_held(names, owner, lease_until_ms=lease_until_ms)

    def release(self, names: Sequence[str], owner: str) -> None:
        """Give the leases up (a server stopping), so the jobs run again at once elsewhere."""
        self._write_held(names, owner, lease_owner=None, lease_until_ms=None)

    def _write_held(self, names: Sequence[str], owner: str, **values: object) -> None:
        """Change the leases ``owner`` holds on jobs ``names``; no others."""
        if names:
            held = sa.and_(
                _table.c.name_key.in_([n.lower() for n in names]), _table.c.lease_owner == owner
            )
            with self._db.write() as conn:
                conn.execute(_table.update().where(held).values(**values))


def _from_row(row: Mapping[Any, Any]) -> TransformJobRecord:
    def time(column: str) -> datetime | None:
        value = row[column]
        return None if value is None else from_ms(value)

    return TransformJobRecord(
        name=row["name"],
        arn=row["arn"],
        status=S(row["status"]),
        creation_time=from_ms(row["creation_time_ms"]),
        last_modified_time=from_ms(row["last_modified_time_ms"]),
        document=row["document"],
        failure_reason=row["failure_reason"],
        start_time=time("start_time_ms"),
        end_time=time("end_time_ms"),
        lease_owner=row["lease_owner"],
        lease_until_ms=row["lease_until_ms"],
    )
