"""Endpoints: the one mutable resource, and the one place an endpoint's status is written.

Every write after ``create`` is a compare-and-set, on the status (``set_status``) or on the
generation (``update``), and bumps ``generation`` and ``last_modified_time``. The same SQL runs
on SQLite and PostgreSQL.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

import sqlalchemy as sa

from moorage.domain import EndpointStatus, advance
from moorage.store._engine import Database
from moorage.store._tables import endpoints as _table
from moorage.store._times import from_ms, to_ms
from moorage.store.documents import delete_named, insert_unique
from moorage.store.listing import ListQuery, select_page
from moorage.store.records import EndpointRecord, JsonObject, Page


class _Keep(Enum):
    KEEP = "keep"


#: The default of optional changes: leave the column as it is.
_KEEP: Final = _Keep.KEEP


class Endpoints:
    """The stored endpoints. Names are case-insensitive."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        name: str,
        arn: str,
        *,
        endpoint_config_name: str,
        document: JsonObject,
        creation_time: datetime,
    ) -> EndpointRecord:
        """Store a new endpoint in ``Creating``; ``AlreadyExists`` if the name is taken."""
        values = {
            "name_key": name.lower(),
            "name": name,
            "arn": arn,
            "endpoint_config_name": endpoint_config_name,
            "pending_config_name": None,
            # An endpoint starts in Creating, always: the status is not the caller's choice.
            "status": str(EndpointStatus.CREATING),
            "failure_reason": None,
            "creation_time_ms": to_ms(creation_time),
            "last_modified_time_ms": to_ms(creation_time),
            "generation": 1,
            "document": dict(document),
        }
        with self._db.write() as conn:
            insert_unique(conn, _table.insert().values(values), "endpoint", arn)
        return _from_row(values)

    def get(self, name: str) -> EndpointRecord | None:
        """The endpoint called ``name`` in any case, or None."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(_table).where(_table.c.name_key == name.lower())).first()
        return None if row is None else _from_row(row._mapping)

    def all(self) -> list[EndpointRecord]:
        """Every endpoint, in name order (the reconciler's pass over all of them)."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(_table).order_by(_table.c.name_key)).all()
        return [_from_row(row._mapping) for row in rows]

    def delete(self, name: str) -> bool:
        """Remove the endpoint and its tags; False if there was none."""
        with self._db.write() as conn:
            return delete_named(conn, _table, name)

    def list(self, query: ListQuery) -> Page[EndpointRecord]:
        """One page of endpoints matching ``query``."""
        with self._db.read() as conn:
            rows, next_token = select_page(conn, _table, query)
        return Page(tuple(_from_row(row._mapping) for row in rows), next_token)

    def set_status(
        self,
        name: str,
        expected: EndpointStatus,
        new: EndpointStatus,
        *,
        failure_reason: str | None = None,
        endpoint_config_name: str | _Keep = _KEEP,
        pending_config_name: str | _Keep | None = _KEEP,
        document: JsonObject | _Keep = _KEEP,
        at: datetime | None = None,
    ) -> bool:
        """Move endpoint ``name`` from ``expected`` to ``new`` if it is still in ``expected``.

        The only writer of an endpoint's status. It guards the race between two writers that
        both read the endpoint in ``expected`` and decided to move it: say DeleteEndpoint
        (Creating -> Deleting) and the reconciler finishing creation (Creating -> InService).
        ``UPDATE … WHERE name_key = :name AND status = :expected`` lets exactly one of them
        through; the other gets False and must read the endpoint again. Also False if there
        is no such endpoint.

        ``failure_reason`` belongs to the new status (None clears it). The other changes are
        written in the same statement; ``at`` is the modification time (default: now).
        Raises ``InvalidTransition`` if the transition table does not allow ``expected -> new``.
        """
        advance(expected, new)
        values = _changes(endpoint_config_name, pending_config_name, document, at)
        values["status"] = str(new)
        values["failure_reason"] = failure_reason
        return self._write_if(name, _table.c.status == str(expected), values)

    def update(
        self,
        name: str,
        *,
        generation: int,
        endpoint_config_name: str | _Keep = _KEEP,
        pending_config_name: str | _Keep | None = _KEEP,
        document: JsonObject | _Keep = _KEEP,
        at: datetime | None = None,
    ) -> bool:
        """Change endpoint ``name`` if it is still at ``generation`` (read from its record).

        Guards a lost update: two writers that read the same endpoint and each write changes
        derived from it (say two UpdateEndpointWeightsAndCapacities), where the second would
        silently overwrite the first. False if anything wrote the endpoint since the read,
        or if there is no such endpoint. The status is not changed here: see ``set_status``.
        """
        values = _changes(endpoint_config_name, pending_config_name, document, at)
        return self._write_if(name, _table.c.generation == generation, values)

    def _write_if(
        self, name: str, condition: sa.ColumnElement[bool], values: dict[str, object]
    ) -> bool:
        statement = (
            _table.update()
            .where(_table.c.name_key == name.lower(), condition)
            .values(generation=_table.c.generation + 1, **values)
        )
        with self._db.write() as conn:
            return conn.execute(statement).rowcount == 1


def _changes(
    endpoint_config_name: str | _Keep,
    pending_config_name: str | _Keep | None,
    document: JsonObject | _Keep,
    at: datetime | None,
) -> dict[str, object]:
    changes: dict[str, object] = {
        "last_modified_time_ms": to_ms(datetime.now(UTC) if at is None else at)
    }
    if not isinstance(endpoint_config_name, _Keep):
        changes["endpoint_config_name"] = endpoint_config_name
    if not isinstance(pending_config_name, _Keep):
        changes["pending_config_name"] = pending_config_name
    if not isinstance(document, _Keep):
        changes["document"] = dict(document)
    return changes


def _from_row(row: Mapping[Any, Any]) -> EndpointRecord:
    return EndpointRecord(
        name=row["name"],
        arn=row["arn"],
        endpoint_config_name=row["endpoint_config_name"],
        status=EndpointStatus(row["status"]),
        creation_time=from_ms(row["creation_time_ms"]),
        last_modified_time=from_ms(row["last_modified_time_ms"]),
        generation=row["generation"],
        document=row["document"],
        failure_reason=row["failure_reason"],
        pending_config_name=row["pending_config_name"],
    )
