"""Framing between the instance's front process and its worker processes.

A private, cheaper hop than HTTP (DESIGN.md decision 2 allows one inside an instance): each
message is ``!IQ`` (meta length, body length), a ``marshal``-ed meta tuple, then the body.
marshal is safe here because both ends are this package on the same interpreter.
"""

import marshal
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

HEAD = struct.Struct("!IQ")


def pack(meta: Any, body: bytes | Sequence[bytes] = b"") -> list[bytes]:
    """One message as buffers to write out; a body given in parts is not joined."""
    encoded = marshal.dumps(meta)
    if isinstance(body, bytes):
        return [HEAD.pack(len(encoded), len(body)), encoded, body]
    return [HEAD.pack(len(encoded), sum(map(len, body))), encoded, *body]


def send(sock: socket.socket, meta: Any, body: bytes = b"") -> None:
    """Blocking send of one message, without joining the body into a new buffer."""
    views = [memoryview(part) for part in pack(meta, body) if part]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def receive(stream: BinaryIO) -> tuple[Any, bytes] | None:
    """Blocking read of one message; ``None`` when the peer closed the connection."""
    head = stream.read(HEAD.size)
    if len(head) < HEAD.size:
        return None
    meta_size, body_size = HEAD.unpack(head)
    meta = marshal.loads(stream.read(meta_size))
    body = stream.read(body_size) if body_size else b""
    if len(body) < body_size:
        return None
    return meta, body


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
