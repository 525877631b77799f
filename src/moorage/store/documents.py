"""Models and endpoint configs: immutable resources stored as the JSON document they were
created with. One repository class serves both; each gets its own table and record type.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from moorage.errors import Conflict
from moorage.store import _tables
from moorage.store._engine import Database
from moorage.store._times import from_ms, to_ms
from moorage.store.listing import ListQuery, select_page
from moorage.store.records import DocumentRecord, JsonObject, Page

R = TypeVar("R", bound=DocumentRecord)


class AlreadyExists(Conflict):
    """A resource of that name exists already (names are unique whatever their case)."""

    def __init__(self, noun: str, arn: str) -> None:
        # SageMaker's own message, which the SageMaker Python SDK looks for.
        super().__init__(f'Cannot create already existing {noun} "{arn}".')
        self.arn = arn


def insert_unique(conn: Connection, statement: sa.Insert, noun: str, arn: str) -> None:
    """Run ``statement``; a clash on the name key becomes ``AlreadyExists``."""
    try:
        conn.execute(statement)
    except IntegrityError as exc:
        raise AlreadyExists(noun, arn) from exc


class Documents(Generic[R]):
    """The stored models, or the stored endpoint configs. Names are case-insensitive."""

    def __init__(self, db: Database, table: sa.Table, record: type[R], noun: str) -> None:
        self._db = db
        self._table = table
        self._record = record
        self._noun = noun

    def create(self, name: str, arn: str, document: JsonObject, creation_time: datetime) -> R:
        """Store a new resource; ``AlreadyExists`` if the name is taken in any case."""
        values = {
            "name_key": name.lower(),
            "name": name,
            "arn": arn,
            "creation_time_ms": to_ms(creation_time),
            "document": dict(document),
        }
        with self._db.write() as conn:
            insert_unique(conn, self._table.insert().values(values), self._noun, arn)
        return self._from_row(values)

    def get(self, name: str) -> R | None:
        """The resource called ``name`` in any case, or None."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(self._table).where(self._table.c.name_key == name.lower())
            ).first()
        return None if row is None else self._from_row(row._mapping)

    def delete(self, name: str) -> bool:
        """Remove the resource and its tags; False if there was none."""
        with self._db.write() as conn:
            return delete_named(conn, self._table, name)

    def list(self, query: ListQuery) -> Page[R]:
        """One page of resources matching ``query``."""
        with self._db.read() as conn:
            rows, next_token = select_page(conn, self._table, query)
        return Page(tuple(self._from_row(row._mapping) for row in rows), next_token)

    def _from_row(self, row: Mapping[Any, Any]) -> R:
        return self._record(
            name=row["name"],
            arn=row["arn"],
            creation_time=from_ms(row["creation_time_ms"]),
            document=row["document"],
        )


def delete_named(conn: Connection, table: sa.Table, name: str) -> bool:
    """Delete the row of ``table`` keyed by ``name`` (any case) and the tags of its ARN."""
    arn = conn.execute(sa.select(table.c.arn).where(table.c.name_key == name.lower())).scalar()
    if arn is None:
        return False
    conn.execute(table.delete().where(table.c.name_key == name.lower()))
    conn.execute(_tables.tags.delete().where(_tables.tags.c.resource_arn == arn.lower()))
    return True
