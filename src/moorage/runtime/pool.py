"""WorkerPool: the worker processes serving one model, seen from the front.

Requests go to an idle worker, or wait in a bounded FIFO queue. A worker that dies is
replaced (with backoff if it keeps dying) and its in-flight request is answered with an error.
A prediction slower than the timeout is answered 504 at once; the worker is left to finish
(user code cannot be interrupted safely) and is killed and replaced if it is still in that
request after a second timeout period. Each worker stamps a small shared status file when a
request begins and ends, so this holds for the requests that do not pass through the pool too.

With a socket prefix, each worker also listens on a socket of its own
(``frames.worker_socket``), where the moorage server sends invocations without this hop; the
pool still starts, watches and replaces the worker.
"""

import asyncio
import contextlib
import dataclasses
import logging
import mmap
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.contract import frames
from moorage.contract.arena import Arena, answer_body, private_folder, request_message
from moorage.errors import LoadError
from moorage.http import Response
from moorage.runtime.launcher import Launcher, SpawnLauncher, WorkerProcess
from moorage.runtime.worker import BUSY, WorkerSpec, map_status

log = logging.getLogger(__name__)

_STOP_GRACE_S = 5.0
_MAX_BACKOFF_S = 10.0
# Requests a worker may hold, the one it runs included. A spare one lets it start the next
# request without waiting for the front to hear of the last, which halves the process switches
# per request under load; more would only queue behind slow predictions while another worker
# may be free.
_DEPTH = 2
# A pool of one worker has no other worker to keep requests for: deeper, it reads several
# requests at a time and the front writes them at once (fewer switches; measured ~25 % less CPU
# per small request at 8 connections). Not for large bodies: they would pile up in the
# transport's buffer (a copy each) for little gain, their cost being the copying, not switches.
_SOLO_DEPTH = 8
_SMALL_BODY = 64 * 1024


class MemoryExhausted(LoadError):
    """The model could not be loaded for lack of memory (the multi-model API answers 507)."""


@dataclass(slots=True)
class _Pending:
    future: "asyncio.Future[Response]"
    headers: dict[str, str]
    model_name: str | None
    # Kept until the worker answers: a body in a slot of the front's arena holds the slot.
    body: Sequence[bytes | memoryview]
    size: int


class _Link(frames.FramedProtocol):
    """The front's end of one worker's socket, and that worker's process."""

    def __init__(self, pool: "WorkerPool", index: int) -> None:
        super().__init__()
        self.pool = pool
        self.index = index
        self.process: WorkerProcess | None = None
        self.is_ready = False
        # Requests sent to the worker, oldest (the one it is running) first.
        self.inflight: deque[_Pending] = deque()
        # When the worker began the oldest request in flight.
        self.head_started = 0.0
        # The oldest request was answered 504 while the worker still runs it.
        self.is_abandoned = False
        self.crashes = 0
        # The worker's status file, mapped: when its current request began, 0.0 if idle.
        self.busy: mmap.mmap | None = None

    def send(self, pending: _Pending) -> None:
        assert self.transport is not None
        if not self.inflight:
            self.head_started = self.pool.loop.time()
        self.inflight.append(pending)
        meta = (pending.headers, pending.model_name)
        self.write(*request_message(self.pool.arena, meta, pending.body))

    def on_message(self, meta: Any, body: bytes | memoryview) -> None:
        if not self.is_ready:
            self.pool.on_hello(self, meta)
            return
        pending = self.inflight.popleft()
        future = pending.future
        # A body in the request's slot is written out from there.
        (status, content_type, extra), body = answer_body(meta, pending.body, body)
        if not future.done():
            headers = [("Content-Type", content_type)] if content_type else []
            if extra:
                headers.extend(extra)
            future.set_result(Response(status, body, headers))
        self.is_abandoned = False
        self.head_started = self.pool.loop.time()
        self.pool.on_answer(self)

    def fail_inflight(self, response: Response) -> None:
        while self.inflight:
            future = self.inflight.popleft().future
            if not future.done():
                future.set_result(response)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class WorkerPool:
    def __init__(
        self,
        spec: WorkerSpec,
        size: int,
        *,
        timeout_s: float,
        queue_size: int,
        status_root: Path,
        launcher: Launcher | None = None,
        socket_prefix: str | None = None,
        arena: Arena | None = None,
    ) -> None:
        self.spec = spec
        self.arena = arena
        self.socket_prefix = socket_prefix
        self.launcher = launcher or SpawnLauncher()
        self.size = size
        self.timeout_s = timeout_s
        self.queue_size = queue_size
        self.depth = _DEPTH if size > 1 else _SOLO_DEPTH
        self.loop = asyncio.get_running_loop()
        # Where the workers stamp when their current request began (see _sweep).
        self._status_dir = Path(tempfile.mkdtemp(dir=status_root))
        self._links = [_Link(self, i) for i in range(size)]
        self._pending: deque[_Pending] = deque()
        self._settled = asyncio.Event()
        # Some worker has loaded the model: requests are accepted (and queue while workers
        # are replaced).
        self.has_loaded = False
        self._is_stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        # Why loading failed, once every worker has failed to load.
        self.failure: LoadError | None = None

    @property
    def ready_workers(self) -> int:
        return sum(1 for link in self._links if link.is_ready)

    @property
    def pids(self) -> list[int]:
        return [link.pid for link in self._links if link.pid is not None]

    async def start(self) -> None:
        """Start every worker; return once one is ready, raise LoadError if all failed."""
        for link in self._links:
            self._run(self._spawn(link))
        self._sweep()
        await self._settled.wait()
        if self.failure is not None:
            await self.stop()
            raise self.failure

    def submit(
        self,
        headers: dict[str, str],
        body: Sequence[bytes | memoryview],
        model_name: str | None = None,
    ) -> "asyncio.Future[Response] | Response":
        if self.failure is not None:
            return Response.text(500, f"The model failed to load: {self.failure}")
        if self._is_stopping:
            return Response.text(503, "The model is being unloaded")
        size = sum(map(len, body))
        pending = _Pending(self.loop.create_future(), headers, model_name, body, size)
        link = self._least_loaded(self._depth_for(size))
        if link is not None:
            link.send(pending)
        elif len(self._pending) >= self.queue_size:
            return Response.text(
                503,
                f"All {self.size} workers are busy and {len(self._pending)} requests are "
                "queued; retry later or raise SAGEMAKER_MODEL_SERVER_WORKERS",
            )
        else:
            self._pending.append(pending)
        return pending.future

    async def stop(self) -> None:
        """Stop every worker: EOF first, then SIGTERM, then SIGKILL, a few seconds apart."""
        self._is_stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        while self._pending:
            pending = self._pending.popleft()
            if not pending.future.done():
                pending.future.set_result(Response.text(503, "The model is being unloaded"))
        for link in self._links:
            if link.transport is not None:
                link.transport.close()
        await asyncio.gather(*(self._reap(link) for link in self._links))
        for link in self._links:
            self._unlink_socket(link)
            if link.busy is not None:
                link.busy.close()
                link.busy = None
        shutil.rmtree(self._status_dir, ignore_errors=True)
        for task in list(self._tasks):
            task.cancel()

    def _depth_for(self, size: int) -> int:
        return self.depth if size <= _SMALL_BODY else _DEPTH

    def _least_loaded(self, depth: int) -> _Link | None:
        """An idle worker, else the least busy one with fewer than ``depth`` requests, else
        None (the request queues)."""
        best: _Link | None = None
        for link in self._links:
            if not link.is_ready or link.is_abandoned:
                continue
            load = len(link.inflight)
            if load == 0:
                return link
            if load < depth and (best is None or load < len(best.inflight)):
                best = link
        return best

    def on_answer(self, link: _Link) -> None:
        while (
            self._pending
            and len(link.inflight) < self._depth_for(self._pending[0].size)
            and not link.is_abandoned
        ):
            pending = self._pending.popleft()
            if not pending.future.done():
                link.send(pending)

    # worker lifecycle

    def _run(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, link: _Link, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self._is_stopping:
            return
        link.reader = frames.Reader(link.on_message)
        link.is_ready = False
        self._reset_status(link)
        link.process, parent = await self.launcher.launch(self._spec_for(link))
        if self._is_stopping:
            # Stopped while it started: closing its socket makes it exit.
            parent.close()
            return
        await self.loop.connect_accepted_socket(lambda: link, parent)
        log.info("worker %d started (pid %d)", link.index, link.process.pid)
        returncode = await link.process.wait()
        self._on_exit(link, returncode)

    def _spec_for(self, link: _Link) -> WorkerSpec:
        arena = self.arena
        return dataclasses.replace(
            self.spec,
            listen=self._socket_path(link),
            status_path=str(self._status_path(link)),
            arena=str(arena.path) if arena else None,
            slot_size=arena.slot_size if arena else 0,
        )

    def _socket_path(self, link: _Link) -> str | None:
        if self.socket_prefix is None:
            return None
        return frames.worker_socket(self.socket_prefix, self.spec.model_name, link.index)

    def _status_path(self, link: _Link) -> Path:
        return self._status_dir / str(link.index)

    def _reset_status(self, link: _Link) -> None:
        """A fresh, idle status file for the worker about to start."""
        if link.busy is not None:
            link.busy.close()
        path = self._status_path(link)
        path.write_bytes(bytes(BUSY.size))
        link.busy = map_status(str(path))

    def _unlink_socket(self, link: _Link) -> None:
        path = self._socket_path(link)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def on_hello(self, link: _Link, meta: Any) -> None:
        if meta[0] == "ready":
            link.is_ready = True
            self.has_loaded = True
            self._settled.set()
            log.info("worker %d (pid %s) loaded the model", link.index, link.pid)
            self.on_answer(link)
            return
        _, kind, message = meta
        error_type = MemoryExhausted if kind == "memory" else LoadError
        self._on_load_failure(error_type(message))

    def _on_load_failure(self, error: LoadError) -> None:
        # A model that never loaded is not retried in a loop: its failure is the answer.
        if self.has_loaded:
            return
        if self.failure is None:
            self.failure = error
            log.error("model failed to load: %s", error)
        self._settled.set()

    def _on_exit(self, link: _Link, returncode: int | None) -> None:
        was_ready = link.is_ready
        link.is_ready = False
        link.is_abandoned = False
        cause = _describe_exit(returncode)
        link.fail_inflight(Response.text(500, f"The worker serving this request died: {cause}"))
        # Direct connections to it see the end of their stream; new ones must not find it.
        self._unlink_socket(link)
        if self._is_stopping:
            return
        if not was_ready and not self.has_loaded:
            if self.failure is None:
                self._on_load_failure(LoadError(f"worker exited before loading the model: {cause}"))
            return
        log.warning("worker %d (pid %s) %s; replacing it", link.index, link.pid, cause)
        link.crashes += 1
        delay = min(_MAX_BACKOFF_S, 0.25 * (2 ** (link.crashes - 1))) if link.crashes > 1 else 0
        self._run(self._spawn(link, delay))

    async def _reap(self, link: _Link) -> None:
        process = link.process
        if process is None or process.returncode is not None:
            return
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                try:
                    process.send_signal(sig)
                except ProcessLookupError:
                    return
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), _STOP_GRACE_S)
                return
            except TimeoutError:
                continue

    # timeouts

    def _sweep(self) -> None:
        now = self.loop.time()
        for link in self._links:
            self._kill_if_stuck(link)
            if not link.inflight:
                continue
            elapsed = now - link.head_started
            if not link.is_abandoned and elapsed > self.timeout_s:
                link.is_abandoned = True
                head = link.inflight[0].future
                if not head.done():
                    head.set_result(
                        Response.text(
                            504,
                            f"The prediction did not finish within {self.timeout_s:g} s "
                            "(SAGEMAKER_MODEL_SERVER_TIMEOUT)",
                        )
                    )
        interval = min(1.0, self.timeout_s / 4)
        self._sweeper = self.loop.call_later(interval, self._sweep)

    def _kill_if_stuck(self, link: _Link) -> None:
        """Kill a worker still in one request after twice the timeout, whoever sent it (the
        server's direct requests never pass here); the pool then replaces it."""
        if link.busy is None or link.busy.closed or link.process is None:
            return
        (began,) = BUSY.unpack_from(link.busy)
        if began and time.monotonic() - began > 2 * self.timeout_s:
            log.warning("worker %d (pid %s) is stuck; killing it", link.index, link.pid)
            BUSY.pack_into(link.busy, 0, 0.0)
            with contextlib.suppress(ProcessLookupError):
                link.process.send_signal(signal.SIGKILL)


def make_status_root() -> Path:
    """A private folder for the status files of this front's workers (and its arena)."""
    return private_folder("moorage-workers-")


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        # Its parent, the zygote, died before it: nobody is left who could learn its status.
        return "exited (its exit status was lost with the zygote that forked it)"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"
