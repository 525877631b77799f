"""List* queries: filters, sort orders and opaque NextTokens, one implementation for all.

Pages are keyset pages: a token holds the sort value and name of the last item shown, so an
item created or deleted between two calls neither shifts nor repeats the items after it. A
token also holds a fingerprint of the query that made it, and any other query refuses it.
"""

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from moorage.domain import EndpointStatus, TransformJobStatus
from moorage.errors import ValidationError
from moorage.store._times import to_ms

_INVALID_TOKEN: Final = (
    "Invalid pagination token; pass the NextToken of the previous page of the same query."
)


class SortBy(StrEnum):
    """``SortBy`` of List*; ``STATUS`` for endpoints and jobs only."""

    NAME = "Name"
    CREATION_TIME = "CreationTime"
    STATUS = "Status"


class SortOrder(StrEnum):
    ASCENDING = "Ascending"
    DESCENDING = "Descending"


@dataclass(frozen=True, kw_only=True)
class ListQuery:
    """One List* request. Time bounds are exclusive; ``name_contains`` ignores case.

    The ``last_modified_*`` bounds, ``status_equals`` and ``SortBy.STATUS`` apply to endpoints
    and transform jobs only. Defaults are SageMaker's, but the API layer should pass what the
    caller sent.
    """

    name_contains: str | None = None
    creation_time_before: datetime | None = None
    creation_time_after: datetime | None = None
    last_modified_before: datetime | None = None
    last_modified_after: datetime | None = None
    status_equals: EndpointStatus | TransformJobStatus | None = None
    sort_by: SortBy = SortBy.CREATION_TIME
    sort_order: SortOrder = SortOrder.DESCENDING
    max_results: int = 10
    next_token: str | None = None


def select_page(
    conn: Connection, table: sa.Table, query: ListQuery
) -> tuple[Sequence[Row[tuple[object, ...]]], str | None]:
    """The rows of ``table`` on the page ``query`` asks for, and the token of the next page
    (which works for this table and query alone)."""
    _check_applies(table, query)
    fingerprint = _fingerprint(table.name, query)
    sort_column = _sort_column(table, query.sort_by)
    key = table.c.name_key
    descending = query.sort_order is SortOrder.DESCENDING
    statement = sa.select(table).where(*_filters(table, query))
    if query.next_token is not None:
        value_type = int if sort_column.name.endswith("_ms") else str
        value, name_key = read_token(query.next_token, fingerprint, (value_type, str))
        statement = statement.where(_after(sort_column, key, value, name_key, descending))
    order = [sort_column, key] if sort_column is not key else [key]
    statement = statement.order_by(*(c.desc() if descending else c.asc() for c in order))
    rows = conn.execute(statement.limit(query.max_results + 1)).all()
    if len(rows) <= query.max_results:
        return rows, None
    rows = rows[: query.max_results]
    last = rows[-1]
    return rows, make_token(fingerprint, [last._mapping[sort_column], last._mapping[key]])


def make_token(fingerprint: str, after: list[object]) -> str:
    """An opaque NextToken: the query's fingerprint and where the next page starts."""
    payload = json.dumps({"q": fingerprint, "after": after}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def read_token(token: str, fingerprint: str, shape: tuple[type, ...]) -> list[object]:
    """The ``after`` list of a token ``make_token`` made for the same query, its items of the
    types in ``shape``; ``ValidationError`` for any other token."""
    try:
        decoded = json.loads(base64.b64decode(token, altchars=b"-_", validate=True))
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise ValidationError(_INVALID_TOKEN) from exc
    if not isinstance(decoded, dict) or decoded.get("q") != fingerprint:
        raise ValidationError(_INVALID_TOKEN)
    after = decoded.get("after")
    # type(), not isinstance: JSON true is a bool, which isinstance takes for an int.
    if not isinstance(after, list) or [type(item) for item in after] != list(shape):
        raise ValidationError(_INVALID_TOKEN)
    return after


def fingerprint_of(*parts: object) -> str:
    """A short digest of what makes a query: the same parts give the same fingerprint."""
    text = json.dumps(parts, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fingerprint(scope: str, query: ListQuery) -> str:
    def ms(value: datetime | None) -> int | None:
        return None if value is None else to_ms(value)

    return fingerprint_of(
        scope,
        None if query.name_contains is None else query.name_contains.lower(),
        ms(query.creation_time_before),
        ms(query.creation_time_after),
        ms(query.last_modified_before),
        ms(query.last_modified_after),
        query.status_equals,
        query.sort_by,
        query.sort_order,
    )


def _check_applies(table: sa.Table, query: ListQuery) -> None:
    if query.max_results < 1:
        raise ValueError(f"max_results must be 1 or more, not {query.max_results}")
    endpoint_only = (
        query.last_modified_before is not None
        or query.last_modified_after is not None
        or query.status_equals is not None
        or query.sort_by is SortBy.STATUS
    )
    if endpoint_only and "status" not in table.c:
        raise ValueError(f"{table.name} have no status or last-modified time to list by")


def _filters(table: sa.Table, query: ListQuery) -> list[sa.ColumnElement[bool]]:
    filters: list[sa.ColumnElement[bool]] = []
    if query.name_contains is not None:
        filters.append(table.c.name_key.contains(query.name_contains.lower(), autoescape=True))
    bounds = [
        ("creation_time_ms", query.creation_time_after, query.creation_time_before),
        ("last_modified_time_ms", query.last_modified_after, query.last_modified_before),
    ]
    for column, after, before in bounds:
        if after is not None:
            filters.append(table.c[column] > to_ms(after))
        if before is not None:
            filters.append(table.c[column] < to_ms(before))
    if query.status_equals is not None:
        filters.append(table.c.status == str(query.status_equals))
    return filters


def _sort_column(table: sa.Table, sort_by: SortBy) -> sa.Column[object]:
    column = {
        SortBy.NAME: "name_key",
        SortBy.CREATION_TIME: "creation_time_ms",
        SortBy.STATUS: "status",
    }[sort_by]
    return table.c[column]


def _after(
    sort_column: sa.Column[object],
    key: sa.Column[object],
    value: object,
    name_key: object,
    descending: bool,
) -> sa.ColumnElement[bool]:
    """Rows past the last row shown (``value``, ``name_key``) in the sort order; names break
    ties."""
    if sort_column is key:
        return key < name_key if descending else key > name_key
    past = sort_column < value if descending else sort_column > value
    tied_past = key < name_key if descending else key > name_key
    return sa.or_(past, sa.and_(sort_column == value, tied_past))
