"""Pooled keep-alive HTTP/1.1 client for one upstream, as a bare ``asyncio.Protocol`` on httptools.

The proxy hop of the invocation path (front → instance, usually over a Unix socket) and the
counterpart of :mod:`moorage.http.server`: general-purpose clients cost 2 to 25 times as much per
request (PERFORMANCE.md). What it does, and no more:

- idle keep-alive connections are reused last-in first-out (the warmest socket first); below
  ``max_connections`` a new one is opened, above it requests wait first-in first-out;
- one request in flight per connection, never pipelined;
- response bodies by Content-Length, chunked, or until the server closes (HTTP/1.0); none for
  HEAD, 204 and 304; 1xx interim responses are skipped; ``Connection: close`` is honoured;
- one sweeper timer per pool enforces deadlines and idle expiry, instead of a timer per request;
- on request, a 2xx body as it arrives (``stream=True``: a :class:`BodyStream`), for relaying
  a streamed answer; the timeout then bounds the wait for each piece.

Failures are :class:`~moorage.errors.InstanceUnavailable` subclasses that say whether the
request can have reached the instance (see :class:`UpstreamError`).
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self, cast

import httptools

from moorage.errors import InstanceUnavailable

# Bodies above this are written separately from the head, to avoid copying them.
_JOIN_LIMIT = 64 * 1024
# Deadline precision: a timed-out request fails at most this much late.
_SWEEP_INTERVAL = 0.25

RequestHeaders = Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]]


class UpstreamError(InstanceUnavailable):
    """The upstream gave no full response. Subclasses say whether the request can have arrived:

    - :class:`UpstreamConnectError`: no connection, nothing sent; safe to retry elsewhere;
    - :class:`UpstreamClosed`: the connection broke, or the answer was not HTTP; it may have run;
    - :class:`UpstreamTimeout`: no full response in time; it may still be running.
    """


class UpstreamConnectError(UpstreamError):
    """No connection could be opened (refused, missing socket): nothing was sent."""


class UpstreamClosed(UpstreamError):
    """The connection closed or broke before a full response: the request may have been run."""


class UpstreamTimeout(UpstreamError):
    """No full response within the timeout; the connection was closed and discarded."""


@dataclass(slots=True)
class ClientResponse:
    """``headers`` in arrival order, names lower-cased; repeated headers stay separate.

    ``body`` may be a view of a larger buffer, so that a large answer is relayed uncopied.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes | memoryview
    # Streamed 2xx answers only: the body, still arriving (``body`` is then empty).
    stream: "BodyStream | None" = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class BodyStream:
    """A response body as it arrives, read with ``async for``. Ends with the body, or raises
    the :class:`UpstreamError` that broke it; ``close()`` gives up on the rest."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parts: deque[bytes] = deque()
        self._size = 0
        self._end: BaseException | None = None  # StopAsyncIteration once complete
        self._waiter: asyncio.Future[None] | None = None
        self._connection: _Connection | None = None

    def __aiter__(self) -> "BodyStream":
        return self

    async def __anext__(self) -> bytes:
        while not self._parts:
            if self._end is not None:
                raise self._end
            self._waiter = self._loop.create_future()
            await self._waiter
        part = self._parts.popleft()
        self._size -= len(part)
        if self._size <= _STREAM_LOW_WATER and self._connection is not None:
            self._connection.resume_stream()
        return part

    def close(self) -> None:
        """Stop reading: the connection is dropped if the body is not complete."""
        if self._end is None:
            self._end = StopAsyncIteration()
            if self._connection is not None:
                self._connection.abandon_stream()
        self._parts.clear()

    # for the connection

    def feed(self, data: bytes) -> bool:
        """Add a piece; False when the reader is behind and reading should pause."""
        if self._end is None:
            self._parts.append(data)
            self._size += len(data)
            self._wake()
        return self._size < _STREAM_HIGH_WATER

    def finish(self, error: BaseException | None = None) -> None:
        if self._end is None:
            self._end = error if error is not None else StopAsyncIteration()
            self._connection = None
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


# A streamed body's reader may fall this far behind before the connection stops reading.
_STREAM_HIGH_WATER = 1024 * 1024
_STREAM_LOW_WATER = 256 * 1024


class _Pending:
    """One request: its bytes (kept until answered, for the stale-connection retry) and future."""

    __slots__ = ("body", "data", "deadline", "future", "is_head", "is_retry", "stream", "timeout")

    def __init__(
        self,
        future: "asyncio.Future[ClientResponse]",
        data: bytes,
        body: Sequence[bytes | memoryview],
        timeout: float,
    ) -> None:
        self.future = future
        self.data = data  # the head, and the body when small
        self.body = body  # a large body's parts, written on their own
        self.timeout = timeout
        self.deadline = 0.0
        self.is_head = False
        self.is_retry = False
        self.stream: BodyStream | None = None  # set for a streamed request

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class _HeadResponseDone(Exception):
    """Stops the parser after the headers of a HEAD response, which has no body to wait for."""


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_has_headers",
        "_headers",
        "_is_complete",
        "_keep_alive",
        "_pool",
        "_received",
        "_status",
        "_streaming",
        "_used",
        "idle_since",
        "is_reused",
        "parser",
        "pending",
        "transport",
    )

    def __init__(self, pool: "ConnectionPool") -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.pending: _Pending | None = None
        self.idle_since = 0.0
        self.is_reused = False
        self._used = False
        self._reset()

    def _reset(self) -> None:
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._has_headers = False
        self._is_complete = False
        self._keep_alive = False
        self._received = False
        self._status = 0
        # The body of a streamed 2xx answer goes here, not to _body, once its headers are in.
        self._streaming: BodyStream | None = None

    def send(self, pending: _Pending) -> None:
        transport = self.transport
        assert transport is not None, "a connection is idle or in use only while open"
        self.pending = pending
        self.is_reused = self._used
        self._used = True
        transport.write(pending.data)
        if pending.body:
            transport.writelines(pending.body)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.pending is None:
            # Nothing was asked: a server's parting words (say, a 408) on an idle connection.
            self.abort()
            return
        self._received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamClosed(f"{self._pool.name} switched protocols; not supported"))
            return
        except httptools.HttpParserError as exc:
            if not self._is_complete:
                self._fail(UpstreamClosed(f"{self._pool.name} sent a malformed response: {exc}"))
                return
            if isinstance(exc.__context__, _HeadResponseDone):
                # The parser still waits for the body the headers announced; start afresh.
                self.parser = httptools.HttpResponseParser(self)
            else:
                self._keep_alive = False  # bytes after the response: no telling what comes next
        if self._is_complete:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        pending = self.pending
        self.pending = None
        stream = self._streaming
        if stream is not None:
            self._streaming = None
            ends_at_close = exc is None and pending is not None and self._reads_until_close(pending)
            broken = UpstreamClosed(f"{self._pool.name} broke off a streamed body")
            stream.finish(None if ends_at_close else broken)
        if pending is not None and not pending.future.done():
            self._settle(pending, exc)
        self._pool.forget(self)

    def _settle(self, pending: _Pending, exc: Exception | None) -> None:
        """The connection is gone with ``pending`` unanswered: complete, retry or fail it."""
        if self._pool.is_closed:
            pending.fail(UpstreamClosed(f"the pool for {self._pool.name} was closed"))
        elif exc is None and self._has_headers and self._reads_until_close(pending):
            pending.future.set_result(self._response())
        elif self.is_reused and not self._received and not pending.is_retry:
            # Most likely a keep-alive connection the server closed while it was idle, its FIN
            # crossing our request: retry once, on a fresh connection. Only reused connections
            # get this second try, and only before any response byte. The request may have
            # reached a server that then died, so it can run twice (urllib3 and httpx take the
            # same risk); a fresh connection failing means the server is failing: no retry.
            pending.is_retry = True
            self._pool.requeue(pending)
        else:
            reason = "the connection broke" if exc else "the server closed the connection"
            error = UpstreamClosed(f"{reason} before a full response from {self._pool.name}")
            error.__cause__ = exc
            pending.fail(error)

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._has_headers = True
        self._status = self.parser.get_status_code()
        pending = self.pending
        if pending is not None and pending.is_head and self._status >= 200:
            self._is_complete = True
            self._keep_alive = self.parser.should_keep_alive()
            raise _HeadResponseDone
        if pending is None or pending.stream is None or pending.future.done():
            return
        if 200 <= self._status < 300:
            stream = self._streaming = pending.stream
            stream._connection = self
            pending.future.set_result(ClientResponse(self._status, self._headers, b"", stream))

    def on_body(self, body: bytes) -> None:
        stream = self._streaming
        if stream is None:
            self._body.append(body)
            return
        pending = self.pending
        if pending is not None:
            # For a stream the timeout bounds the wait for each piece, not the whole body.
            pending.deadline = self._pool.now() + pending.timeout
        if not stream.feed(body) and self.transport is not None:
            self.transport.pause_reading()

    def resume_stream(self) -> None:
        if self.transport is not None and self._streaming is not None:
            self.transport.resume_reading()

    def abandon_stream(self) -> None:
        if self._streaming is not None:
            self._fail(UpstreamClosed("the reader of the streamed body went away"))

    def on_message_complete(self) -> None:
        if self._status < 200:
            # 100 Continue and friends: the real response follows on the same connection.
            self._has_headers = False
            return
        self._is_complete = True
        self._keep_alive = self.parser.should_keep_alive()

    # internals

    def _response(self) -> ClientResponse:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        return ClientResponse(self._status, self._headers, body)

    def _reads_until_close(self, pending: _Pending) -> bool:
        """Whether the body ends when the server closes: no length and not chunked (HTTP/1.0)."""
        if pending.is_head or self._status in (204, 304):
            return False
        return not any(name in ("content-length", "transfer-encoding") for name, _ in self._headers)

    def _finish(self) -> None:
        pending = self.pending
        assert pending is not None
        stream = self._streaming
        response = self._response()
        keep_alive = self._keep_alive
        self.pending = None
        self._reset()
        if stream is not None:
            stream.finish()
        elif not pending.future.done():
            pending.future.set_result(response)
        if keep_alive:
            self._pool.release(self)
        elif self.transport is not None:
            self.transport.close()

    def _fail(self, exc: UpstreamError) -> None:
        pending = self.pending
        self.pending = None
        if pending is not None:
            pending.fail(exc)
        if self._streaming is not None:
            self._streaming.finish(exc)
            self._streaming = None
        self.abort()

    def expire(self, now: float) -> None:
        """Called by the sweeper while a request is in flight."""
        pending = self.pending
        if pending is None:
            return
        if pending.future.done() and self._streaming is None:
            # The caller gave up (cancelled): an answer would only delay the next request.
            self._fail(UpstreamClosed("cancelled"))
        elif pending.deadline <= now:
            name = self._pool.name
            self._fail(UpstreamTimeout(f"no response from {name} within {pending.timeout} s"))


class ConnectionPool:
    """Keep-alive connections to one upstream: ``unix_path``, or ``host`` and ``port``.

    Create it inside the running event loop; ``await close()`` (or use ``async with``) when done.
    """

    def __init__(
        self,
        *,
        unix_path: str | None = None,
        host: str | None = None,
        port: int | None = None,
        max_connections: int = 64,
        idle_timeout: float = 30.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        self._loop = asyncio.get_running_loop()
        self._address: str | tuple[str, int]
        if unix_path is not None and host is None and port is None:
            self._address = unix_path
            self.name = f"unix:{unix_path}"
            host_header = "localhost"
        elif unix_path is None and host is not None and port is not None:
            self._address = (host, port)
            self.name = f"http://{host}:{port}"
            host_header = f"{host}:{port}"
        else:
            raise ValueError("give a ConnectionPool either unix_path, or host and port")
        self._host_line = f"\r\nhost: {host_header}\r\n"
        self._max = max_connections
        self._idle_timeout = idle_timeout
        self._count = 0  # open connections plus connections being opened
        self._connections: set[_Connection] = set()
        self._idle: deque[_Connection] = deque()  # oldest on the left, newest on the right
        self._queue: deque[_Pending] = deque()
        self._connecting: set[_Pending] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._is_closed = False
        self._all_lost: asyncio.Future[None] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def is_closed(self) -> bool:
        return self._is_closed

    @property
    def connection_count(self) -> int:
        """Open connections, and those being opened."""
        return self._count

    def request(
        self,
        method: str,
        path: str,
        headers: RequestHeaders,
        body: bytes | Sequence[bytes | memoryview],
        *,
        timeout: float,
        stream: bool = False,
    ) -> "asyncio.Future[ClientResponse]":
        """Send one request; the future fails with an :class:`UpstreamError` subclass.

        ``timeout`` covers all of it: waiting for a connection, sending, and the full response
        (with ``stream``, a 2xx answer is given at its headers, its body in ``stream``, and the
        timeout then bounds the wait for each piece of it).
        ``path`` must be a valid request target; ``headers`` must be valid header lines without
        Host, Content-Length, Transfer-Encoding or Connection: the pool writes those. A future,
        not a coroutine, so a caller can chain it without creating a task.
        """
        future: asyncio.Future[ClientResponse] = self._loop.create_future()
        if self._is_closed:
            future.set_exception(UpstreamClosed(f"the pool for {self.name} is closed"))
            return future
        parts = (body,) if isinstance(body, bytes) else body
        length = sum(map(len, parts))
        head = self._head(method, path, headers, length)
        if length <= _JOIN_LIMIT:
            pending = _Pending(future, b"".join((head, *parts)), (), timeout)
        else:
            # A large body goes out as the parts it arrived in, never joined into one copy.
            pending = _Pending(future, head, parts, timeout)
        pending.deadline = self._loop.time() + timeout
        pending.is_head = method == "HEAD"
        if stream:
            pending.stream = BodyStream(self._loop)
        if self._idle:
            self._idle.pop().send(pending)
        elif self._count < self._max:
            self._open(pending)
        else:
            self._queue.append(pending)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(_SWEEP_INTERVAL, self._sweep)
        return future

    async def close(self) -> None:
        """Close every connection: requests in flight fail with UpstreamClosed, those not sent
        yet with UpstreamConnectError."""
        self._is_closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        # Nothing of these was sent, so a caller may safely try them elsewhere.
        unsent = UpstreamConnectError(f"the pool for {self.name} was closed before sending")
        for pending in (*self._queue, *self._connecting):
            pending.fail(unsent)
        self._queue.clear()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._idle.clear()
        if self._connections:
            self._all_lost = self._loop.create_future()
            for connection in list(self._connections):
                connection.abort()
            await self._all_lost

    # for connections

    def now(self) -> float:
        return self._loop.time()

    def release(self, connection: _Connection) -> None:
        """A connection finished a request and may take the next one."""
        queue = self._queue
        while queue:
            pending = queue.popleft()
            if not pending.future.done():
                connection.send(pending)
                return
        if self._is_closed:
            connection.abort()
            return
        connection.idle_since = self._loop.time()
        self._idle.append(connection)

    def forget(self, connection: _Connection) -> None:
        """A connection was lost; a queued request may take its place."""
        if connection not in self._connections:
            return
        self._connections.discard(connection)
        self._count -= 1
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
        if self._is_closed:
            if not self._connections and self._all_lost and not self._all_lost.done():
                self._all_lost.set_result(None)
            return
        while self._queue and self._count < self._max:
            pending = self._queue.popleft()
            if not pending.future.done():
                self._open(pending)

    def requeue(self, pending: _Pending) -> None:
        """Put a request first in line again, for a fresh connection (see ``forget``)."""
        if self._is_closed:
            pending.fail(UpstreamClosed(f"the pool for {self.name} was closed"))
        else:
            self._queue.appendleft(pending)

    # internals

    def _head(self, method: str, path: str, headers: RequestHeaders, length: int) -> bytes:
        if headers and isinstance(headers[0][0], bytes):
            lines = b"".join(
                b"%s: %s\r\n" % pair for pair in cast(Sequence[tuple[bytes, bytes]], headers)
            )
            start = f"{method} {path} HTTP/1.1{self._host_line}".encode("latin-1")
            return b"%s%scontent-length: %d\r\n\r\n" % (start, lines, length)
        text = "".join(
            [f"{name}: {value}\r\n" for name, value in cast(Sequence[tuple[str, str]], headers)]
        )
        return (
            f"{method} {path} HTTP/1.1{self._host_line}{text}content-length: {length}\r\n\r\n"
        ).encode("latin-1")

    def _open(self, pending: _Pending) -> None:
        self._count += 1
        self._connecting.add(pending)
        task = self._loop.create_task(self._connect(pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, pending: _Pending) -> None:
        address = self._address
        try:
            if isinstance(address, str):
                _, connection = await self._loop.create_unix_connection(
                    lambda: _Connection(self), address
                )
            else:
                _, connection = await self._loop.create_connection(
                    lambda: _Connection(self), address[0], address[1]
                )
        except OSError as exc:
            self._count -= 1
            self._connecting.discard(pending)
            error = UpstreamConnectError(f"cannot connect to {self.name}: {exc}")
            error.__cause__ = exc
            pending.fail(error)
            return
        except asyncio.CancelledError:
            self._count -= 1
            self._connecting.discard(pending)
            raise
        self._connecting.discard(pending)
        self._connections.add(connection)
        if connection.transport is None:  # lost before we got here
            if pending.is_retry:
                pending.fail(UpstreamClosed(f"{self.name} closed a new connection at once"))
            else:
                pending.is_retry = True
                self.requeue(pending)
            self.forget(connection)
        elif pending.future.done():
            self.release(connection)
        else:
            connection.send(pending)

    def _sweep(self) -> None:
        # One timer for the pool, instead of arming one per request.
        now = self._loop.time()
        for connection in list(self._connections):
            connection.expire(now)
        idle = self._idle
        while idle and idle[0].idle_since + self._idle_timeout <= now:
            idle.popleft().abort()
        if self._queue:
            self._queue = self._expire(self._queue, now)
        for pending in [p for p in self._connecting if p.deadline <= now]:
            pending.fail(
                UpstreamTimeout(f"no connection to {self.name} within {pending.timeout} s")
            )
        if self._count or self._queue:
            self._sweeper = self._loop.call_later(_SWEEP_INTERVAL, self._sweep)
        else:
            self._sweeper = None

    def _expire(self, queue: deque[_Pending], now: float) -> deque[_Pending]:
        waiting: deque[_Pending] = deque()
        for pending in queue:
            if pending.future.done():
                continue
            if pending.deadline <= now:
                message = f"no free connection to {self.name} within {pending.timeout} s"
                pending.fail(UpstreamTimeout(message))
            else:
                waiting.append(pending)
        return waiting
