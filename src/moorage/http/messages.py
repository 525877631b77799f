"""Requests and responses as the HTTP server hands them to a handler."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field


class Request:
    """``headers`` maps lower-cased names to values; repeated headers are joined with ", ".

    The body arrives in pieces; ``parts`` hands them on as received (a proxy writes them out
    without joining them), ``body`` joins them once, on first use. A large body of known
    length arrives whole, as a view of the buffer the server's sink lent.
    """

    __slots__ = ("_body", "_parts", "headers", "method", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes | list[bytes] | memoryview = b"",
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self._body: bytes | None = body if isinstance(body, bytes) else None
        self._parts: Sequence[bytes | memoryview] | None = (
            None if isinstance(body, bytes) else [body] if isinstance(body, memoryview) else body
        )

    @property
    def body(self) -> bytes:
        if self._body is None:
            assert self._parts is not None
            self._body = b"".join(self._parts)
            self._parts = None
        return self._body

    @property
    def parts(self) -> Sequence[bytes | memoryview]:
        return (self._body,) if self._body is not None else self._parts or ()


@dataclass(slots=True)
class Response:
    """``headers`` must not carry Content-Length or Connection: the server writes those.

    ``body`` may be a memoryview of a larger buffer, to relay a large body without copying it.
    """

    status: int
    body: bytes | memoryview = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    # A body written as it is produced (chunked), instead of ``body``; closed if the client
    # goes away first.
    stream: AsyncIterator[bytes] | None = None

    @classmethod
    def text(cls, status: int, message: str) -> "Response":
        return cls(status, message.encode(), [("Content-Type", "text/plain; charset=utf-8")])

    @classmethod
    def json(cls, status: int, body: bytes) -> "Response":
        return cls(status, body, [("Content-Type", "application/json")])
