"""Tags of any resource, keyed by its ARN (lower-cased: SageMaker ARNs are lower-case, and an
ARN the caller spells with capitals names the same resource)."""

from collections.abc import Iterable, Mapping
from typing import Final

import sqlalchemy as sa

from moorage.store._engine import Database
from moorage.store._tables import tags as _table
from moorage.store.listing import fingerprint_of, make_token, read_token
from moorage.store.records import Page, Tag

_MOST_TAGS: Final = 10_000


class Tags:
    """Tags per resource ARN. Whether the resource exists is the caller's to check."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, resource_arn: str, tags: Mapping[str, str]) -> None:
        """Add ``tags`` (key -> value) to the resource, overwriting the values of keys it has."""
        arn = resource_arn.lower()
        with self._db.write() as conn:
            if tags:
                conn.execute(
                    _table.delete().where(
                        _table.c.resource_arn == arn, _table.c.tag_key.in_(list(tags))
                    )
                )
                rows = [
                    {"resource_arn": arn, "tag_key": k, "tag_value": v} for k, v in tags.items()
                ]
                conn.execute(_table.insert(), rows)

    def list(
        self, resource_arn: str, *, max_results: int, next_token: str | None = None
    ) -> Page[Tag]:
        """One page of the resource's tags, in key order."""
        if max_results < 1:
            raise ValueError(f"max_results must be 1 or more, not {max_results}")
        # ListTags.MaxResults has no maximum, but LIMIT takes a 64-bit integer (SQLite and
        # PostgreSQL); a page holds at most this many, and NextToken gives the rest.
        max_results = min(max_results, _MOST_TAGS)
        arn = resource_arn.lower()
        query_print = fingerprint_of("tags", arn)
        statement = sa.select(_table.c.tag_key, _table.c.tag_value).where(
            _table.c.resource_arn == arn
        )
        if next_token is not None:
            (after,) = read_token(next_token, query_print, (str,))
            statement = statement.where(_table.c.tag_key > after)
        statement = statement.order_by(_table.c.tag_key).limit(max_results + 1)
        with self._db.read() as conn:
            rows = conn.execute(statement).all()
        items = tuple(Tag(key=key, value=value) for key, value in rows[:max_results])
        if len(rows) <= max_results:
            return Page(items)
        return Page(items, make_token(query_print, [items[-1].key]))

    def delete(self, resource_arn: str, keys: Iterable[str]) -> None:
        """Remove the resource's tags with these keys; keys it lacks are ignored."""
        with self._db.write() as conn:
            conn.execute(
                _table.delete().where(
                    _table.c.resource_arn == resource_arn.lower(),
                    _table.c.tag_key.in_(list(keys)),
                )
            )

    def delete_all(self, resource_arn: str) -> None:
        """Remove every tag of the resource (``delete`` of a resource does it already)."""
        with self._db.write() as conn:
            conn.execute(_table.delete().where(_table.c.resource_arn == resource_arn.lower()))
