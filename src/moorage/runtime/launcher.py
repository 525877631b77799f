"""How the front starts a worker process: forked from the zygote, or spawned afresh.

``ZygoteLauncher`` asks the zygote (``moorage.runtime.zygote``) for each worker and restarts
the zygote if it dies; while it cannot get one from the zygote it spawns, as
``SpawnLauncher`` always does (``python -m moorage.runtime.worker SPEC FD``). Either way the
pool gets a ``WorkerProcess`` and its end of the worker's socket.
"""

import asyncio
import contextlib
import itertools
import logging
import marshal
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from moorage.runtime.worker import WorkerSpec

log = logging.getLogger(__name__)

_MAX_MESSAGE = 1 << 16
# The zygote is restarted at once after it dies, then after a growing delay if it keeps dying.
_RESTART_BACKOFF_S = (0.0, 0.5, 2.0, 10.0)
# How often the exit of a worker orphaned by a dead zygote is checked where pidfds are missing.
_ORPHAN_POLL_S = 0.5
_STOP_GRACE_S = 5.0


class WorkerProcess(Protocol):
    """A worker seen from the front; ``asyncio.subprocess.Process`` is one."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int | None:
        """The exit code as ``subprocess`` gives it, or None where it could not be learnt."""

    def send_signal(self, sig: int) -> None: ...


class Launcher(Protocol):
    async def launch(self, spec: WorkerSpec) -> tuple[WorkerProcess, socket.socket]:
        """Start a worker for ``spec``; return it and the front's end of its socket."""

    async def close(self) -> None: ...


class SpawnLauncher:
    """A fresh interpreter per worker: slow to start, but needs nothing but ``exec``."""

    async def launch(self, spec: WorkerSpec) -> tuple[WorkerProcess, socket.socket]:
        parent, child = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "moorage.runtime.worker",
                spec.to_json(),
                str(child.fileno()),
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        return process, parent

    async def close(self) -> None:
        pass


class ZygoteLost(Exception):
    """The zygote died or could not start; the caller spawns instead."""


class ForkedWorker:
    """A worker forked by the zygote: its exit code comes from the zygote, which reaps it."""

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._loop = loop
        self._exited: asyncio.Future[int | None] = loop.create_future()
        # A pidfd names this process even after its pid is reused, and tells when it ends if
        # the zygote can no longer say (Linux 5.3+).
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(pid)

    async def wait(self) -> int | None:
        # Shielded: a caller that gives up waiting must not cancel the exit for others.
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self._exited.done():
            return
        if self._pidfd is not None:
            signal.pidfd_send_signal(self._pidfd, sig)
        else:
            os.kill(self.pid, sig)

    def on_exit(self, returncode: int | None) -> None:
        if self._exited.done():
            return
        self.returncode = returncode
        self._exited.set_result(returncode)
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def watch_orphaned(self) -> None:
        """The zygote died: learn of this worker's end from its pidfd (the code is lost)."""
        if self._exited.done():
            return
        if self._pidfd is not None:
            self._loop.add_reader(self._pidfd, self.on_exit, None)
        else:
            self._poll_orphaned()

    def _poll_orphaned(self) -> None:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            self.on_exit(None)
            return
        except PermissionError:
            pass  # the pid was reused by someone else's process: ours is gone
        else:
            self._loop.call_later(_ORPHAN_POLL_S, self._poll_orphaned)
            return
        self.on_exit(None)


class _Zygote:
    """One zygote process and the front's end of its control socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, launcher: "ZygoteLauncher") -> None:
        self.loop = loop
        self.launcher = launcher
        self.process: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.ready.add_done_callback(_consume)
        self._requests: dict[int, asyncio.Future[ForkedWorker]] = {}
        self._seq = itertools.count()
        self.is_lost = False

    async def start(self, preload: Sequence[str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "moorage.runtime.zygote",
                str(theirs.fileno()),
                ",".join(preload),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.loop.add_reader(ours.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        sock = self.sock
        while sock is not None:
            try:
                data = sock.recv(_MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_socket()
                self.lose("its socket closed")
                return
            self._on_message(marshal.loads(data))

    def _on_message(self, message: Any) -> None:
        kind = message[0]
        if kind == "exit":
            _, pid, returncode = message
            worker = self.launcher.workers.pop(pid, None)
            if worker is not None:
                worker.on_exit(returncode)
        elif kind == "forked":
            _, seq, pid = message
            future = self._requests.pop(seq, None)
            worker = self.launcher.workers[pid] = ForkedWorker(pid, self.loop)
            if future is not None and not future.done():
                future.set_result(worker)
        elif kind == "failed":
            _, seq, reason = message
            future = self._requests.pop(seq, None)
            if future is not None and not future.done():
                future.set_exception(ZygoteLost(reason))
        elif kind == "ready":
            log.info("zygote started (pid %d)", message[1])
            if not self.ready.done():
                self.ready.set_result(None)

    async def fork(self, spec: WorkerSpec) -> tuple[WorkerProcess, socket.socket]:
        await asyncio.shield(self.ready)
        sock = self.sock
        if sock is None or self.is_lost:
            raise ZygoteLost("the zygote is gone")
        seq = next(self._seq)
        future: asyncio.Future[ForkedWorker] = self.loop.create_future()
        self._requests[seq] = future
        parent, child = socket.socketpair()
        try:
            payload = marshal.dumps((seq, spec.to_json()))
            while True:
                try:
                    socket.send_fds(sock, [payload], [child.fileno()])
                    break
                except BlockingIOError:
                    await self._writable(sock)
                except OSError as exc:
                    raise ZygoteLost(f"cannot reach the zygote: {exc}") from exc
            worker = await asyncio.shield(future)
        except BaseException:
            self._requests.pop(seq, None)
            parent.close()
            raise
        finally:
            child.close()
        return worker, parent

    async def _writable(self, sock: socket.socket) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.loop.add_writer(sock.fileno(), _settle, waiter)
        try:
            await waiter
        finally:
            self.loop.remove_writer(sock.fileno())

    def lose(self, why: str) -> None:
        if self.is_lost:
            return
        self.is_lost = True
        error = ZygoteLost(f"the zygote {why}")
        if not self.ready.done():
            self.ready.set_exception(error)
        for future in self._requests.values():
            if not future.done():
                future.set_exception(error)
        self._requests.clear()

    def drain(self) -> None:
        """Read what the zygote sent before it died (exit codes of its last children)."""
        self._on_readable()
        self._close_socket()

    def _close_socket(self) -> None:
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    async def stop(self) -> None:
        self._close_socket()
        self.lose("was stopped")
        process = self.process
        if process is None or process.returncode is not None:
            return
        # EOF on its socket stops it; a signal only if it does not.
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), _STOP_GRACE_S)
                return
            except TimeoutError:
                continue


class ZygoteLauncher:
    """Forks workers from a zygote process, restarted when it dies; spawns while it cannot."""

    def __init__(self, preload: Sequence[str]) -> None:
        self.preload = tuple(preload)
        self.loop = asyncio.get_running_loop()
        # Every live worker the zygote forked, by pid.
        self.workers: dict[int, ForkedWorker] = {}
        self._spawner = SpawnLauncher()
        self._zygote: _Zygote | None = None
        self._is_closing = False
        self._supervisor = self.loop.create_task(self._supervise())

    @property
    def zygote_pid(self) -> int | None:
        zygote = self._zygote
        if zygote is None or zygote.process is None or zygote.is_lost:
            return None
        return zygote.process.pid

    async def launch(self, spec: WorkerSpec) -> tuple[WorkerProcess, socket.socket]:
        zygote = self._zygote
        if zygote is not None and not zygote.is_lost:
            try:
                return await zygote.fork(spec)
            except ZygoteLost as exc:
                log.warning("cannot fork a worker (%s); spawning one instead", exc)
        return await self._spawner.launch(spec)

    async def _supervise(self) -> None:
        failures = 0
        while not self._is_closing:
            zygote = _Zygote(self.loop, self)
            self._zygote = zygote
            try:
                await zygote.start(self.preload)
            except OSError as exc:
                zygote.lose(f"could not start: {exc}")
                log.error("the zygote could not start (%s); workers will be spawned", exc)
                return
            assert zygote.process is not None
            returncode = await zygote.process.wait()
            was_ready = (
                zygote.ready.done()
                and not zygote.ready.cancelled()
                and zygote.ready.exception() is None
            )
            zygote.drain()
            zygote.lose(f"exited with code {returncode}")
            # Its children now belong to init: only their pidfds can tell when they end.
            for worker in list(self.workers.values()):
                worker.watch_orphaned()
            self.workers.clear()
            if self._is_closing:
                return
            failures = 0 if was_ready else failures + 1
            if failures >= len(_RESTART_BACKOFF_S):
                log.error("the zygote keeps failing to start; workers will be spawned")
                return
            log.warning(
                "the zygote (pid %d) exited with code %d; restarting it",
                zygote.process.pid,
                returncode,
            )
            await asyncio.sleep(_RESTART_BACKOFF_S[failures])

    async def close(self) -> None:
        self._is_closing = True
        if self._zygote is not None:
            await self._zygote.stop()
        self._supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._supervisor


def _settle(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)


def _consume(future: "asyncio.Future[Any]") -> None:
    # Nobody may be waiting for a zygote that died before it was ready; its error is logged
    # by the supervisor, not as "exception was never retrieved".
    if not future.cancelled():
        future.exception()


def make_launcher(*, use_zygote: bool, preload: Sequence[str]) -> Launcher:
    """The zygote where ``fork`` exists and it is wanted, else spawning."""
    if use_zygote and hasattr(os, "fork") and hasattr(socket, "send_fds"):
        return ZygoteLauncher(preload)
    return SpawnLauncher()
