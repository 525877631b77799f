"""The private framing spoken to the built-in runtime's worker processes.

A cheaper hop than HTTP (DESIGN.md decision 2 allows one where it is measured to pay off): each
message is ``!IQ`` (meta length, body length), a ``marshal``-ed meta tuple, then the body.
marshal is safe here because every end is this package, on the same interpreter.

Two kinds of peer speak it to a worker: its instance's front (over a socket pair) and, for
invocations only, the moorage server, which connects to the Unix socket the worker listens on
(:func:`worker_socket`) so that a request crosses one process boundary instead of two. The
worker runs a request ``(headers, model_name)`` + body and answers
``(status, content_type, extra_headers)`` + body, in order, per connection.
"""

import asyncio
import hashlib
import marshal
import struct
from collections.abc import Callable, Sequence
from typing import Any, cast

HEAD = struct.Struct("!IQ")


def pack(meta: Any, body: bytes | Sequence[bytes | memoryview] = b"") -> list[bytes | memoryview]:
    """One message as buffers to write out; a body given in parts is not joined."""
    encoded = marshal.dumps(meta)
    if isinstance(body, bytes):
        return [HEAD.pack(len(encoded), len(body)), encoded, body]
    return [HEAD.pack(len(encoded), sum(map(len, body))), encoded, *body]


class Reader:
    """Incremental decoder for an asyncio protocol: feed bytes, get ``on_message`` calls.

    Whole messages inside one chunk (the common case for small bodies) are decoded in place; a
    message split over chunks is collected until complete and joined once. A large body is
    handed on as a memoryview of the received buffer, so it is never copied here.
    """

    __slots__ = ("_chunks", "_need", "_on_message", "_size")

    def __init__(self, on_message: Callable[[Any, bytes | memoryview], None]) -> None:
        self._on_message = on_message
        self._chunks: list[bytes] = []
        self._size = 0
        # Bytes needed before the first collected chunk can be decoded further.
        self._need = HEAD.size

    def feed(self, data: bytes) -> None:
        if self._chunks:
            self._chunks.append(data)
            self._size += len(data)
            if self._size < self._need:
                return
            data = b"".join(self._chunks)
            self._chunks = []
        position, end, size = 0, 0, len(data)
        while True:
            if size - position < HEAD.size:
                need = HEAD.size
                break
            meta_size, body_size = HEAD.unpack_from(data, position)
            body_start = position + HEAD.size + meta_size
            end = body_start + body_size
            if end > size:
                need = end - position
                break
            view = memoryview(data)
            meta = marshal.loads(view[position + HEAD.size : body_start])
            body = view[body_start:end] if body_size > _COPY_LIMIT else data[body_start:end]
            position = end
            self._on_message(meta, body)
        if position < size:
            rest = data[position:]
            self._chunks = [rest]
            self._size = len(rest)
            self._need = need


# Bodies up to this size are copied out of the received buffer; larger ones are viewed.
_COPY_LIMIT = 64 * 1024


class FramedProtocol(asyncio.Protocol):
    """The event-loop end of a framed connection: decodes what arrives, and writes every
    message queued in one loop iteration at once (fewer system calls, fewer wake-ups of the
    peer under load)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = Reader(self.on_message)
        self._outbox: list[bytes | memoryview] = []
        # Kept: asyncio.get_running_loop() costs a getpid() system call on Python 3.11.
        self._loop = asyncio.get_running_loop()

    def on_message(self, meta: Any, body: bytes | memoryview) -> None:
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def write(self, meta: Any, body: bytes | Sequence[bytes | memoryview]) -> None:
        if not self._outbox:
            self._loop.call_soon(self._flush)
        self._outbox.extend(pack(meta, body))

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        if self.transport is not None:
            self.transport.writelines(outbox)


def worker_socket_stem(prefix: str, model_name: str | None) -> str:
    """Where the sockets of one model's workers live, but for the worker's index.

    ``prefix`` is the instance's (``--worker-sockets``); model names are hashed so that any name
    fits the ~107 bytes a Unix socket path may have.
    """
    if model_name is None:
        return f"{prefix}.w"
    return f"{prefix}.m{hashlib.sha256(model_name.encode()).hexdigest()[:16]}.w"


def worker_socket(prefix: str, model_name: str | None, index: int) -> str:
    return f"{worker_socket_stem(prefix, model_name)}{index}"
