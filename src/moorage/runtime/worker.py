"""A worker process: loads one model, then answers requests one at a time.

Forked from the zygote (``zygote.py``), which then calls ``run``, or, where it cannot be,
started by the front as ``python -m moorage.runtime.worker SPEC_JSON FD``; FD is its end of a
socket pair. It first sends ``("ready", pid)`` or ``("failed", kind, message)``, then answers
the requests of ``contract.frames`` that arrive on that socket pair and, when the spec names a
socket to listen on, on the moorage server's direct connections, taking the peers in turn.

No event loop and no threads: the front answers ``/ping``, answers 504 at the timeout and
replaces a worker that dies, so the worker spends its whole time in the model. It exits when
the front closes the socket pair.
"""

import contextlib
import json
import logging
import marshal
import mmap
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from moorage.contract import frames
from moorage.contract.arena import Slots
from moorage.contract.frames import HEAD
from moorage.errors import LoadError
from moorage.http import malloc
from moorage.runtime.messages import InferenceRequest, InferenceResponse

log = logging.getLogger("moorage.worker")

# Reads of the small buffer; a body larger than this is read into a buffer of its own.
_READ_SIZE = 256 * 1024
# The status file's content: when the current request began (time.monotonic()), 0.0 if idle.
BUSY = struct.Struct("d")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker loads; travels as JSON on the worker's command line."""

    model_dir: str
    code_dir: str | None
    program: str | None
    default_accept: str
    model_name: str | None = None
    # 415 / 406 / 400 for requests the default functions cannot handle (else 500, as GEN).
    http_client_errors: bool = False
    extra_sys_path: tuple[str, ...] = ()
    log_level: int = logging.INFO
    # The Unix socket the server may connect to directly (``frames.worker_socket``).
    listen: str | None = None
    # A file of BUSY.size bytes the worker maps and stamps with the CLOCK_MONOTONIC time at
    # which its current request began (0: idle), for the front's watchdog.
    status_path: str | None = None
    # The front's shared memory for large bodies (``arena.py``) and the size of its slots.
    arena: str | None = None
    slot_size: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "WorkerSpec":
        raw = json.loads(text)
        raw["extra_sys_path"] = tuple(raw.get("extra_sys_path") or ())
        return cls(**raw)


def run(spec: WorkerSpec, fd: int) -> int:
    # Ctrl-C reaches the whole process group; the front decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    malloc.tune()
    front = socket.socket(fileno=fd)
    # Imported here so that a failing import of numpy or user code is reported as a load error.
    from moorage.runtime.handlers import Handler

    try:
        handler = Handler.load(
            Path(spec.model_dir),
            Path(spec.code_dir) if spec.code_dir else None,
            spec.program,
            default_accept=spec.default_accept,
            model_name=spec.model_name,
            extra_sys_path=[Path(p) for p in spec.extra_sys_path],
            http_client_errors=spec.http_client_errors,
        )
    except (LoadError, MemoryError) as exc:
        kind = "memory" if isinstance(exc, MemoryError) or _is_memory(exc) else "load"
        log.error("model load failed: %s", exc)
        _send(front, ("failed", kind, str(exc) or type(exc).__name__))
        return 3
    listener = _listen(spec.listen) if spec.listen else None
    _send(front, ("ready", os.getpid()))
    busy = map_status(spec.status_path) if spec.status_path else None
    slots = Slots(spec.arena, spec.slot_size) if spec.arena else None
    _Server(front, listener, handler.invoke, busy, slots).run()
    return 0


def map_status(path: str) -> mmap.mmap:
    """The status file at ``path``, mapped shared (the worker writes it, the front reads it)."""
    with open(path, "r+b") as file:
        return mmap.mmap(file.fileno(), BUSY.size)


def _listen(path: str) -> socket.socket | None:
    """The socket the server's direct connections arrive on; None if it cannot be made."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by the worker this one replaces
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(16)
    except OSError as exc:
        # Requests still arrive through the front; only the shortcut is lost.
        log.warning("cannot listen on %s (%s); serving through the front only", path, exc)
        listener.close()
        return None
    return listener


class _Channel:
    """One peer's connection: the front's socket pair, or a direct connection of the server.

    Blocking reads into a small buffer; a large body is read straight into a buffer of its
    size, so it is copied once out of the kernel and never again.
    """

    __slots__ = ("buffer", "slots", "sock")

    def __init__(self, sock: socket.socket, slots: Slots | None = None) -> None:
        self.sock = sock
        self.buffer = bytearray()
        # The peer's arena, where it puts large bodies (``contract.arena``).
        self.slots = slots

    def fill(self) -> bool:
        """One read from the socket; False when the peer has closed it."""
        data = self.sock.recv(_READ_SIZE)
        if not data:
            return False
        self.buffer += data
        return True

    def next(self) -> tuple[Any, bytes | bytearray] | None:
        """The next whole message, reading the rest of a large body if it has begun; else None."""
        buffer = self.buffer
        if len(buffer) < HEAD.size:
            return None
        meta_size, body_size = HEAD.unpack_from(buffer)
        body_start = HEAD.size + meta_size
        end = body_start + body_size
        if len(buffer) < end and (body_size <= _READ_SIZE or len(buffer) < body_start):
            return None
        meta = marshal.loads(bytes(buffer[HEAD.size : body_start]))
        body: bytes | bytearray
        if len(buffer) >= end:
            body = bytes(buffer[body_start:end])
            del buffer[:end]
            return meta, body
        body = bytearray(body_size)
        have = len(buffer) - body_start
        body[:have] = buffer[body_start:]
        buffer.clear()
        view = memoryview(body)
        while have < body_size:
            received = self.sock.recv_into(view[have:], body_size - have, socket.MSG_WAITALL)
            if not received:
                raise ConnectionResetError("the peer closed the connection mid-message")
            have += received
        view.release()
        return meta, body


class _Server:
    """Answers requests from the front and from the server's direct connections, in turn."""

    def __init__(
        self,
        front: socket.socket,
        listener: socket.socket | None,
        invoke: Callable[[InferenceRequest], InferenceResponse],
        busy: mmap.mmap | None,
        slots: Slots | None,
    ) -> None:
        self.front = _Channel(front, slots)
        # Other peers' arenas by path, mapped once.
        self.arenas: dict[str, Slots] = {}
        self.channels = [self.front]
        self.listener = listener
        self.invoke = invoke
        self.busy = busy
        self.selector: selectors.BaseSelector | None = None
        if listener is not None:
            self.selector = selectors.DefaultSelector()
            self.selector.register(front, selectors.EVENT_READ, self.front)
            self.selector.register(listener, selectors.EVENT_READ, None)

    def run(self) -> None:
        """Serve until the front closes its socket."""
        while True:
            answered = False
            for channel in self.channels:
                message = self._next(channel)
                if message is not None:
                    self.handle(channel, *message)
                    answered = True
            if answered:
                continue
            for channel in self._readable():
                if not channel.fill():
                    if channel is self.front:
                        return
                    self._drop(channel)

    def handle(self, channel: _Channel, meta: Any, body: bytes | bytearray) -> None:
        if len(meta) == 2:
            headers, model_name = meta
            self.answer(channel, headers, model_name, body, None)
        elif len(meta) == 5:
            # The body is in a slot of the peer's arena; the answer goes there too if it fits.
            headers, model_name, index, size, room = meta
            assert channel.slots is not None
            slot = channel.slots[index][:room]
            self.answer(channel, headers, model_name, slot[:size], slot)
        else:
            # A direct peer tells where its large bodies will be: ("arena", path, slot size).
            _, path, slot_size = meta
            try:
                if path not in self.arenas:
                    self.arenas[path] = Slots(path, slot_size)
            except OSError as exc:
                # The peer sees the connection close and sends through the front instead.
                log.warning("cannot map %s (%s); closing that connection", path, exc)
                self._drop(channel)
                return
            channel.slots = self.arenas[path]

    def answer(
        self,
        channel: _Channel,
        headers: dict[str, str],
        model_name: str | None,
        body: bytes | bytearray | memoryview,
        slot: memoryview | None,
    ) -> None:
        busy = self.busy
        if busy is not None:
            # Memory writes, not system calls: the front reads the stamp to find a worker
            # stuck in a request, whoever sent it, and kills it (user code, native code
            # included, cannot be interrupted safely from inside).
            BUSY.pack_into(busy, 0, time.monotonic())
        response = self.invoke(InferenceRequest(body, headers, model_name))
        if busy is not None:
            BUSY.pack_into(busy, 0, 0.0)
        answer: tuple[Any, ...] = (response.status, response.content_type, response.headers)
        out = response.body
        if slot is not None and len(out) <= len(slot):
            slot[: len(out)] = out
            answer, out = (*answer, len(out)), b""
        try:
            _send(channel.sock, answer, out)
        except OSError:
            # A direct connection the server closed (it gave up on the request); the front's
            # own socket failing means the front is gone, which the next read tells.
            if channel is not self.front:
                self._drop(channel)

    def _next(self, channel: _Channel) -> tuple[Any, bytes | bytearray] | None:
        try:
            return channel.next()
        except OSError:
            if channel is self.front:
                raise
            self._drop(channel)
            return None

    def _readable(self) -> list[_Channel]:
        if self.selector is None:
            return self.channels  # only the front: block reading it
        ready = []
        for key, _ in self.selector.select():
            if key.data is None:
                self._accept()
            else:
                ready.append(key.data)
        return ready

    def _accept(self) -> None:
        assert self.listener is not None
        assert self.selector is not None
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        channel = _Channel(sock)
        self.channels.append(channel)
        self.selector.register(sock, selectors.EVENT_READ, channel)

    def _drop(self, channel: _Channel) -> None:
        if channel in self.channels:
            self.channels.remove(channel)
            assert self.selector is not None
            self.selector.unregister(channel.sock)
            channel.sock.close()


def _send(sock: socket.socket, meta: Any, body: bytes = b"") -> None:
    """Blocking send of one message, without joining the body into a new buffer."""
    views = [memoryview(part) for part in frames.pack(meta, body) if part]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def _is_memory(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, MemoryError) or "MemoryError" in str(exc)


def main() -> None:
    spec = WorkerSpec.from_json(sys.argv[1])
    logging.basicConfig(
        level=spec.log_level,
        format="%(asctime)s %(levelname)s [worker %(process)d] %(name)s: %(message)s",
    )
    sys.exit(run(spec, int(sys.argv[2])))


if __name__ == "__main__":
    main()
