"""A small HTTP/1.1 server and client and their records, on asyncio + httptools.

Used on the hot path by the instance runtime and the server front: no framework, bodies stay
bytes. The server owns parsing, keep-alive, pipelining, body and header limits, timeouts and
back-pressure; the client pools keep-alive connections to one upstream (the proxy hop). Knows
nothing of SageMaker.
"""

from moorage.http.client import (
    BodyStream,
    ClientResponse,
    ConnectionPool,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from moorage.http.messages import Request, Response
from moorage.http.server import Handler, HttpServer, Limits

__all__ = [
    "BodyStream",
    "ClientResponse",
    "ConnectionPool",
    "Handler",
    "HttpServer",
    "Limits",
    "Request",
    "Response",
    "UpstreamClosed",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamTimeout",
]
