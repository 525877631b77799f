"""HTTP/1.1 server as a bare ``asyncio.Protocol`` over httptools.

Why not uvicorn: its ASGI layer costs about three times what this protocol does per request
(PERFORMANCE.md), and the invocation path is all overhead. What it must keep from a real
server, and does: keep-alive, pipelining (answers in order), chunked request bodies,
``Expect: 100-continue``, body/header limits (413/431), slow clients (408 after
``read_timeout``), idle keep-alive expiry, and write back-pressure.

A handler gets a complete :class:`Request` and returns a :class:`Response` or a future of one;
returning a future (not a coroutine) lets a dispatcher answer without creating a task. A
response with a ``stream`` is written with chunked encoding as the stream yields, honouring
write back-pressure; pipelined requests wait for it to end.

A body of known length above ``_STREAM_MIN`` is read by the kernel straight into one buffer of
its size (the server's :data:`BodySink` may lend one, e.g. in shared memory), bypassing the
parser: a 1 MiB body is then copied once on its way in, where reading it through the parser
copies it three times (loop buffer, bytes per chunk, join). For that time only, the
transport's protocol is a :class:`_BodyReader`; small requests keep the cheaper
``data_received`` path.
"""

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast

import httptools

from moorage.http.messages import Request, Response

log = logging.getLogger(__name__)

Handler = Callable[[Request], "Response | asyncio.Future[Response]"]
# Renders the server's own error answers (limits, timeouts, malformed requests), so that an
# adapter can give them its wire shape.
ErrorRenderer = Callable[[int, str], Response]


def _bytearray_sink(size: int) -> memoryview:
    return memoryview(bytearray(size))


# Lends the buffer a large body of the given size is read into, e.g. a slot of shared memory
# the handler passes on as is (``contract.arena``).
BodySink = Callable[[int], memoryview]

# Bodies above this are written separately from the head, to avoid copying them.
_JOIN_LIMIT = 64 * 1024
# Bodies of a known length above this are read into a buffer of their own (see above).
_STREAM_MIN = 64 * 1024
_SWEEP_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Limits:
    max_body: int = 6 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    # A started request must be fully received within this many seconds (slow clients).
    read_timeout: float = 60.0
    # An idle keep-alive connection is closed after this many seconds.
    keep_alive_timeout: float = 75.0
    # Requests read ahead of the one being answered before reading pauses.
    max_pipelined: int = 16


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


_STATUS_LINES = {s.value: _status_line(s.value) for s in HTTPStatus}
# Encoded header lines: most answers repeat the same few (content types, variant names).
_HEADER_LINES: dict[tuple[str, str], bytes] = {}
_HEADER_CACHE_SIZE = 1024


class _Rejected(Exception):
    """Raised inside a parser callback to stop parsing a request that breaks a limit."""


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_body_size",
        "_busy",
        "_closing",
        "_current_keep_alive",
        "_header_bytes",
        "_headers",
        "_keep_alive",
        "_method",
        "_queue",
        "_reading_paused",
        "_rejection",
        "_server",
        "_sink",
        "_stream_task",
        "_url",
        "_writable",
        "_write_paused",
        "deadline",
        "parser",
        "transport",
    )

    def __init__(self, server: "HttpServer") -> None:
        self._server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._queue: deque[tuple[Request, bool]] = deque()
        self._busy = False
        self._closing = False
        self._current_keep_alive = True
        self._write_paused = False
        self._reading_paused = False
        self._rejection: Response | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._writable: asyncio.Future[None] | None = None  # a stream waits on it while paused
        self._reset_message()
        self.deadline = math.inf

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        # The buffer a large body is read into, once its headers are in (see data_received).
        self._sink: memoryview | None = None
        self._keep_alive = True
        self._method = b""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)
        self.deadline = self._server.loop.time() + self._server.limits.keep_alive_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._closing = True
        self._queue.clear()
        self._reset_message()  # gives back a body buffer lent by the sink
        self.transport = None
        if self._stream_task is not None:
            self._stream_task.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if len(self._queue) < self._server.limits.max_pipelined:
            self._resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            rejection = self._rejection or self._server.error(500, "Internal server error")
            self._fail(rejection)
        except httptools.HttpParserUpgrade:
            self._fail(self._server.error(400, "Protocol upgrades are not supported"))
        except httptools.HttpParserError as exc:
            self._fail(self._server.error(400, f"Malformed HTTP request: {exc}"))
            return
        if self._sink is not None and self.transport is not None:
            # A large body has begun: the rest of it goes straight into its buffer.
            self.transport.set_protocol(_BodyReader(self))

    def body_buffer(self) -> memoryview:
        assert self._sink is not None
        # Only the rest of the body: what follows it is the next request, for the parser.
        return self._sink[self._body_size :]

    def body_received(self, nbytes: int) -> None:
        assert self._sink is not None
        self._body_size += nbytes
        if self._body_size == len(self._sink) and self.transport is not None:
            self.transport.set_protocol(self)
            # The parser saw the headers only; a fresh one takes the next request.
            self.parser = httptools.HttpRequestParser(self)
            self._complete(self._keep_alive)

    def eof_received(self) -> bool | None:
        # A half-closed client may still read the answers to what it sent; but one that stops
        # sending in the middle of a streamed answer has gone, and the stream should stop.
        if self._stream_task is not None:
            return None
        return True if self._busy or self._queue else None

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._reset_message()
        self.deadline = self._server.loop.time() + self._server.limits.read_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        if len(self._headers) >= self._server.limits.max_headers:
            self._reject(self._server.error(431, "Too many request headers"))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        headers = self._headers
        length = headers.get("content-length")
        size = int(length) if length is not None and length.isdigit() else 0
        limit = self._server.limits.max_body
        if size > limit:
            self._reject(self._server.error(413, _too_large(limit)))
        if "expect" in headers and headers["expect"].lower() == "100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if size > _STREAM_MIN and "transfer-encoding" not in headers:
            self._sink = self._server.sink(size)
            # Kept for when the body is in: the parser will not see it (see data_received).
            self._keep_alive = self.parser.should_keep_alive()
            self._method = self.parser.get_method()

    def on_body(self, body: bytes) -> None:
        sink = self._sink
        start = self._body_size
        self._body_size += len(body)
        if sink is not None:
            # The part of the body that came with the headers.
            sink[start : self._body_size] = body
            return
        if self._body_size > self._server.limits.max_body:
            self._reject(self._server.error(413, _too_large(self._server.limits.max_body)))
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._complete(self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        path, _, query = self._url.decode("latin-1").partition("?")
        body: bytes | list[bytes] | memoryview
        if self._sink is not None:
            body = self._sink
            method = self._method
        else:
            parts = self._body
            body = parts[0] if len(parts) == 1 else (parts or b"")
            method = self.parser.get_method()
        request = Request(method.decode("ascii"), path, query, self._headers, body)
        self._reset_message()
        self.deadline = math.inf
        if self._busy:
            self._queue.append((request, keep_alive))
            if len(self._queue) >= self._server.limits.max_pipelined:
                self._pause_reading()
        else:
            self._dispatch(request, keep_alive)

    # internals

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self._server.limits.max_header_bytes:
            self._reject(self._server.error(431, "Request header fields too large"))

    def _reject(self, response: Response) -> None:
        self._rejection = response
        raise _Rejected

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        # A loop, not recursion: pipelined requests answered synchronously must not nest.
        while True:
            try:
                result = self._server.handler(request)
            except Exception:
                log.exception("handler failed for %s %s", request.method, request.path)
                result = self._server.error(500, "Internal server error")
            if not isinstance(result, Response):
                self._busy = True
                self._current_keep_alive = keep_alive
                result.add_done_callback(self._on_result)
                return
            if result.stream is not None:
                self._start_stream(result, keep_alive)
                return
            self._write(result, keep_alive)
            if self._closing or not self._queue:
                return
            request, keep_alive = self._queue.popleft()

    def _on_result(self, future: "asyncio.Future[Response]") -> None:
        self._busy = False
        if future.cancelled():
            response = Response.text(503, "The request was cancelled")
        elif (exc := future.exception()) is not None:
            log.error("handler failed", exc_info=exc)
            response = self._server.error(500, "Internal server error")
        else:
            response = future.result()
        if self._closing:
            if response.stream is not None:
                _close_later(response.stream)
            return
        if response.stream is not None:
            self._start_stream(response, self._current_keep_alive)
            return
        self._write(response, self._current_keep_alive)
        self._next()

    def _next(self) -> None:
        """The answer is out: go on with the next pipelined request."""
        if self._queue and not self._closing:
            request, keep_alive = self._queue.popleft()
            if not self._write_paused:
                self._resume_reading()
            self._dispatch(request, keep_alive)

    def _start_stream(self, response: Response, keep_alive: bool) -> None:
        assert response.stream is not None
        self._busy = True
        self._write_head(response, b"transfer-encoding: chunked\r\n", keep_alive)
        self._stream_task = self._server.loop.create_task(self._pump(response.stream, keep_alive))

    async def _pump(self, stream: AsyncIterator[bytes], keep_alive: bool) -> None:
        completed = False
        try:
            async for chunk in stream:
                transport = self.transport
                if transport is None:
                    break
                if chunk:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                if self._write_paused:
                    self._writable = self._server.loop.create_future()
                    await self._writable
            else:
                completed = True
        except asyncio.CancelledError:
            pass  # the client went away
        except Exception:
            log.exception("a streamed response failed")
        finally:
            self._stream_task = None
            await _close(stream)
        transport = self.transport
        if transport is None:
            return
        if not completed:
            # The body is cut short: the client must not take it for a whole one.
            self._closing = True
            transport.abort()
            return
        transport.write(b"0\r\n\r\n")
        self._busy = False
        self._after_write(transport, keep_alive)
        self._next()

    def _write(self, response: Response, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        body = response.body
        parts = self._head(response, b"content-length: %d\r\n" % len(body), keep_alive)
        if len(body) <= _JOIN_LIMIT:
            parts.append(body)
            transport.write(b"".join(parts))
        else:
            transport.write(b"".join(parts))
            # Written from the body's own buffer, not a copy: a view of a lent buffer keeps it
            # lent until the transport has written it all (``contract.arena``).
            transport.write(body)
        self._after_write(transport, keep_alive)

    def _write_head(self, response: Response, framing: bytes, keep_alive: bool) -> None:
        if self.transport is not None:
            self.transport.write(b"".join(self._head(response, framing, keep_alive)))

    @staticmethod
    def _head(response: Response, framing: bytes, keep_alive: bool) -> list[bytes | memoryview]:
        """The status line and headers, ``framing`` (the body's length or chunked) among them."""
        parts: list[bytes | memoryview] = [
            _STATUS_LINES.get(response.status) or _status_line(response.status)
        ]
        for header in response.headers:
            line = _HEADER_LINES.get(header)
            if line is None:
                line = f"{header[0]}: {header[1]}\r\n".encode("latin-1")
                if len(_HEADER_LINES) < _HEADER_CACHE_SIZE:
                    _HEADER_LINES[header] = line
            parts.append(line)
        parts.append(framing)
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return parts

    def _after_write(self, transport: asyncio.Transport, keep_alive: bool) -> None:
        if not keep_alive:
            self._closing = True
            transport.close()
        elif not self._queue:
            self.deadline = self._server.loop.time() + self._server.limits.keep_alive_timeout

    def _fail(self, response: Response) -> None:
        """Answer a request that cannot be parsed or breaks a limit, then close."""
        self._closing = True
        self._queue.clear()
        if self._busy:
            # The answer in flight comes first; the connection closes after it.
            self._current_keep_alive = False
            return
        self._write(response, keep_alive=False)

    def expire(self, now: float) -> None:
        if self.deadline > now or self.transport is None:
            return
        if self._header_bytes or self._body_size:
            self._fail(self._server.error(408, "Request not received in time"))
        else:
            self._closing = True
            self.transport.close()

    def close_if_idle(self) -> None:
        if not self._busy and not self._queue and self.transport is not None:
            self._closing = True
            self.transport.close()

    @property
    def is_busy(self) -> bool:
        return self._busy

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()


class _BodyReader(asyncio.BufferedProtocol):
    """The transport's protocol while a large body is read into its buffer."""

    __slots__ = ("_connection",)

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._connection.body_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self._connection.body_received(nbytes)

    def eof_received(self) -> bool | None:
        return self._connection.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection.connection_lost(exc)

    def pause_writing(self) -> None:
        self._connection.pause_writing()

    def resume_writing(self) -> None:
        self._connection.resume_writing()


async def _close(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


_closing_streams: set["asyncio.Task[None]"] = set()


def _close_later(stream: AsyncIterator[bytes]) -> None:
    """Close a stream nobody will read (its client is gone) without awaiting it here."""
    task = asyncio.ensure_future(_close(stream))
    _closing_streams.add(task)
    task.add_done_callback(_closing_streams.discard)


def _too_large(limit: int) -> str:
    return f"Request body is larger than the limit of {limit} bytes"


class HttpServer:
    """Serves one handler on one or more listening sockets until :meth:`close`.

    Create it inside the running event loop, then call one of the ``listen_*`` methods.
    """

    def __init__(
        self,
        handler: Handler,
        limits: Limits,
        error: ErrorRenderer = Response.text,
        sink: BodySink = _bytearray_sink,
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.error = error
        self.sink = sink
        self.loop = asyncio.get_running_loop()
        self.connections: set[_Connection] = set()
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.TimerHandle | None = None

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        server = await self.loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True, backlog=1024
        )
        self._add(server)
        address = server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def listen_unix(self, path: str) -> None:
        # A socket file left by a previous run would make the bind fail.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server = await self.loop.create_unix_server(lambda: _Connection(self), path, backlog=1024)
        self._add(server)

    async def listen_socket(self, sock: socket.socket) -> None:
        server = await self.loop.create_server(lambda: _Connection(self), sock=sock, backlog=1024)
        self._add(server)

    def _add(self, server: asyncio.Server) -> None:
        self._servers.append(server)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(_SWEEP_INTERVAL, self._sweep)

    def _sweep(self) -> None:
        # One timer for all connections, instead of arming one per request.
        now = self.loop.time()
        for connection in list(self.connections):
            connection.expire(now)
        self._sweeper = self.loop.call_later(_SWEEP_INTERVAL, self._sweep)

    async def close(self, grace: float = 10.0) -> None:
        """Stop accepting, close idle connections, wait up to ``grace`` s for answers in flight."""
        for server in self._servers:
            server.close()
        deadline = self.loop.time() + grace
        while self.connections and self.loop.time() < deadline:
            for connection in list(self.connections):
                connection.close_if_idle()
            if not any(c.is_busy for c in self.connections):
                break
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
