"""The server's direct connections to the workers of one model on one instance.

The built-in runtime's workers listen on Unix sockets of their own (``contract.frames``), so an
invocation crosses one process boundary (server → worker) instead of two (server → front →
worker): half the system calls and wake-ups per request, which is most of its cost. The front
stays the supervisor: it starts, watches and replaces workers, answers ``/ping`` and the
``/models`` API. The server only connects to the sockets it finds, and the caller falls back
to the front's HTTP route whenever no direct connection is open (while workers start or after
one died), so the HTTP contract keeps working and stays tested.

A connection carries requests pipelined in order; the worker answers them in order. Timeouts
match the HTTP client's: the request fails with ``UpstreamTimeout`` and the connection takes
no new request until the late answer has arrived (the worker is still busy with it).
"""

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from moorage.contract import frames
from moorage.contract.arena import Arena, answer_body, request_message
from moorage.http.client import ClientResponse, UpstreamTimeout

log = logging.getLogger(__name__)

# How often the sockets are looked for again while requests come (workers replaced, added).
_SCAN_INTERVAL_S: Final = 1.0
# Requests one connection carries at most, as many as the front queues per model by default:
# past that, the front takes them, whose bounded queue answers 503 when the model cannot keep
# up, instead of every request waiting for the invocation timeout in socket buffers.
MAX_IN_FLIGHT: Final = 100
_SWEEP_INTERVAL_S: Final = 0.25
_DIED: Final = (
    b"The worker process serving this request exited before answering; the instance "
    b"replaces it (see the instance's log)."
)


class WorkerChannels:
    """Direct connections to the workers whose sockets are named ``{stem}{index}``."""

    def __init__(self, stem: str, arena: Arena | None = None) -> None:
        self._stem = stem
        # Where large bodies are, when the HTTP server read them into this arena's slots.
        self.arena = arena
        self._loop = asyncio.get_running_loop()
        self._channels: list[_Channel] = []
        self._connecting: set[str] = set()
        self._next_scan = 0.0
        self._sweeper: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._is_closed = False

    def pick(self) -> "_Channel | None":
        """The open connection with the fewest requests in flight, or None (use the front):
        none is open, or each already carries ``MAX_IN_FLIGHT``."""
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + _SCAN_INTERVAL_S
            self._scan()
        best: _Channel | None = None
        for channel in self._channels:
            if channel.is_abandoned:
                continue
            if best is None or len(channel.inflight) < len(best.inflight):
                best = channel
        if best is not None and len(best.inflight) >= MAX_IN_FLIGHT:
            return None
        return best

    async def connect(self) -> None:
        """Connect to the sockets there are now (later ones are found as requests come)."""
        self._next_scan = time.monotonic() + _SCAN_INTERVAL_S
        self._scan()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def request(
        self,
        channel: "_Channel",
        headers: Sequence[tuple[str, str]],
        model_name: str | None,
        body: Sequence[bytes | memoryview],
        timeout: float,
    ) -> "asyncio.Future[ClientResponse]":
        future = channel.send(headers, model_name, body, self._loop.time() + timeout, timeout)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(_SWEEP_INTERVAL_S, self._sweep)
        return future

    def close(self) -> None:
        self._is_closed = True
        for task in self._tasks:
            task.cancel()
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()

    def lost(self, channel: "_Channel") -> None:
        if channel in self._channels:
            self._channels.remove(channel)
        # Its replacement listens on the same path once it has loaded the model.
        self._next_scan = 0.0

    def _scan(self) -> None:
        folder, prefix = os.path.split(self._stem)
        try:
            names = os.listdir(folder)
        except OSError:
            return
        open_paths = {channel.path for channel in self._channels} | self._connecting
        for name in names:
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                path = os.path.join(folder, name)
                if path not in open_paths:
                    self._connecting.add(path)
                    task = self._loop.create_task(self._connect(path))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _connect(self, path: str) -> None:
        try:
            _, channel = await self._loop.create_unix_connection(lambda: _Channel(self, path), path)
        except OSError:
            return  # a socket left by a worker that died, or one not listening yet
        finally:
            self._connecting.discard(path)
        if self._is_closed:
            channel.close()
        elif channel.transport is not None:
            self._channels.append(channel)

    def _sweep(self) -> None:
        # One timer for all connections, instead of arming one per request.
        now = self._loop.time()
        busy = False
        for channel in self._channels:
            channel.expire(now)
            busy = busy or bool(channel.inflight)
        self._sweeper = self._loop.call_later(_SWEEP_INTERVAL_S, self._sweep) if busy else None


class _Pending:
    __slots__ = ("body", "deadline", "future", "timeout")

    def __init__(
        self,
        future: "asyncio.Future[ClientResponse]",
        deadline: float,
        timeout: float,
        body: Sequence[bytes | memoryview],
    ) -> None:
        self.future = future
        self.deadline = deadline
        self.timeout = timeout
        # Kept until the worker answers: a body in a slot holds the slot, which the worker
        # may write its answer into even after the request timed out.
        self.body = body


class _Channel(frames.FramedProtocol):
    """One direct connection to one worker."""

    def __init__(self, owner: WorkerChannels, path: str) -> None:
        super().__init__()
        self.owner = owner
        self.path = path
        # Requests written or about to be, oldest (the one the worker runs) first.
        self.inflight: deque[_Pending] = deque()
        # The oldest request timed out while the worker still runs it.
        self.is_abandoned = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        arena = self.owner.arena
        if arena is not None:
            self.write(("arena", str(arena.path), arena.slot_size), b"")

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.owner.lost(self)
        while self.inflight:
            pending = self.inflight.popleft()
            if not pending.future.done():
                pending.future.set_result(
                    ClientResponse(500, [("content-type", "text/plain")], _DIED)
                )

    def send(
        self,
        headers: Sequence[tuple[str, str]],
        model_name: str | None,
        body: Sequence[bytes | memoryview],
        deadline: float,
        timeout: float,
    ) -> "asyncio.Future[ClientResponse]":
        future: asyncio.Future[ClientResponse] = self._loop.create_future()
        self.inflight.append(_Pending(future, deadline, timeout, body))
        self.write(*request_message(self.owner.arena, (dict(headers), model_name), body))
        return future

    def on_message(self, meta: Any, body: bytes | memoryview) -> None:
        pending = self.inflight.popleft()
        # A body in the request's slot is relayed from there.
        (status, content_type, extra), body = answer_body(meta, pending.body, body)
        self.is_abandoned = False
        if pending.future.done():
            return
        headers = [("content-type", content_type)] if content_type else []
        if extra:
            headers.extend((name.lower(), value) for name, value in extra)
        if not 200 <= status < 300:
            body = bytes(body)  # error texts are read as bytes; success bodies are relayed
        pending.future.set_result(ClientResponse(status, headers, body))

    def expire(self, now: float) -> None:
        for index, pending in enumerate(self.inflight):
            if pending.deadline > now:
                break
            if not pending.future.done():
                if index == 0:
                    self.is_abandoned = True
                pending.future.set_exception(
                    UpstreamTimeout(f"no answer from worker {self.path} within {pending.timeout} s")
                )

    def close(self) -> None:
        if self.transport is None:
            return
        with contextlib.suppress(RuntimeError):
            if self.inflight and self.owner.arena is not None:
                # The worker may still write answers into the slots of the requests in
                # flight: they stay lent until it has closed its end (done, or dead).
                self._flush()
                self.transport.write_eof()
            else:
                self.transport.close()
