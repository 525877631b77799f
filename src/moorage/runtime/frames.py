"""Framing between the instance's front process and its worker processes.

A private, cheaper hop than HTTP (DESIGN.md decision 2 allows one inside an instance): each
message is ``!IQ`` (meta length, body length), a ``marshal``-ed meta tuple, then the body.
marshal is safe here because both ends are this package on the same interpreter.
"""

import marshal
import socket
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

HEAD = struct.Struct("!IQ")


def pack(meta: Any, body: bytes = b"") -> list[bytes]:
    encoded = marshal.dumps(meta)
    return [HEAD.pack(len(encoded), len(body)), encoded, body]


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
    """Incremental decoder for an asyncio protocol: feed bytes, get ``on_message`` calls."""

    __slots__ = ("_body_size", "_chunks", "_meta", "_need", "_on_message", "_size", "_state")

    def __init__(self, on_message: Callable[[Any, bytes], None]) -> None:
        self._on_message = on_message
        self._chunks: list[bytes] = []
        self._size = 0
        self._state = 0  # 0: head, 1: meta, 2: body
        self._need = HEAD.size
        self._meta: Any = None
        self._body_size = 0

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        while self._size >= self._need:
            blob = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            # Slicing a whole bytes object returns it without a copy.
            piece, rest = blob[: self._need], blob[self._need :]
            self._chunks = [rest] if rest else []
            self._size = len(rest)
            self._advance(piece)

    def _advance(self, piece: bytes) -> None:
        if self._state == 0:
            meta_size, self._body_size = HEAD.unpack(piece)
            self._state, self._need = 1, meta_size
        elif self._state == 1:
            self._meta = marshal.loads(piece)
            if self._body_size:
                self._state, self._need = 2, self._body_size
            else:
                self._emit(b"")
        else:
            self._emit(piece)

    def _emit(self, body: bytes) -> None:
        meta, self._meta = self._meta, None
        self._state, self._need = 0, HEAD.size
        self._on_message(meta, body)
