"""A small HTTP/1.1 server and its request/response records, on asyncio + httptools.

Used on the hot path by the instance runtime and the server front: no framework, bodies stay
bytes. Owns parsing, keep-alive, pipelining, body and header limits, timeouts and back-pressure;
knows nothing of SageMaker.
"""

from moorage.http.messages import Request, Response
from moorage.http.server import Handler, HttpServer, Limits

__all__ = ["Handler", "HttpServer", "Limits", "Request", "Response"]
