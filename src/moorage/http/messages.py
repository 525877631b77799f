"""Requests and responses as the HTTP server hands them to a handler."""

from dataclasses import dataclass, field


@dataclass(slots=True)
class Request:
    """``headers`` maps lower-cased names to values; repeated headers are joined with ", "."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(slots=True)
class Response:
    """``headers`` must not carry Content-Length or Connection: the server writes those.

    ``body`` may be a memoryview of a larger buffer, to relay a large body without copying it.
    """

    status: int
    body: bytes | memoryview = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def text(cls, status: int, message: str) -> "Response":
        return cls(status, message.encode(), [("Content-Type", "text/plain; charset=utf-8")])

    @classmethod
    def json(cls, status: int, body: bytes) -> "Response":
        return cls(status, body, [("Content-Type", "application/json")])
