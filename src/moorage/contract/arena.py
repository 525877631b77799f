"""Shared memory for large bodies between a worker and its peers (its front, the server).

Why: a 1 MiB body sent over a socket is copied into the kernel and out again on each way, and
an event loop's reads copy it twice more. With a slot of shared memory, the peer's HTTP server
has the kernel read the client's body straight into the slot (its ``BodySink`` is
:meth:`Arena.lend`), the worker reads it there and writes its answer back into the same slot
when it fits, and the HTTP server writes the answer out from there; only small frames cross
the socket. On the shared bench's 1 MiB echo this is most of what a hop costs.

An arena is one file in a private folder (in ``/dev/shm`` where it is writable), divided into
slots of ``slot_size`` bytes (the payload limit, rounded up to a page). The file is sparse: a
slot's memory is reserved as bodies need it (in steps of ``_RESERVE_STEP``), and slots are lent
last-returned-first, so the memory in use follows the largest bodies seen at once. A slot left
free for ``IDLE_S`` gives its memory back (:func:`keep_trimmed`), so a burst of large bodies
does not leave the process holding memory for good.
A body that does not fit, finds every slot taken, or cannot have its memory, is read into
ordinary memory and travels over the socket.

The buffer is the lease: a lent view exports a ctypes array over the slot that holds the
slot's :class:`_Lease`, and every slice of it keeps that array alive, so the slot is given back
when the last view is gone: the request, its record in the peer (kept until the worker has
answered: a timed-out request's slot stays taken until the late answer, so the worker never
writes into a slot lent again), the answer, and the transport writing it out. Reference
counting makes that immediate on every path a request can end by.
"""

import asyncio
import contextlib
import ctypes
import mmap
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_PAGE = mmap.PAGESIZE
_RESERVE_STEP = 1024 * 1024
# Large requests at a time with a body in shared memory; more travel over the socket. With 8,
# 1 MiB bodies at 64 connections went half as fast as with 64.
SLOTS = 64
# A free slot keeps its memory this long after its last body: long enough that steady traffic
# does not pay for reserving it again, short enough that a burst's memory comes back.
IDLE_S = 30.0


class Arena:
    """The lending side: the HTTP server's peer of the workers."""

    def __init__(self, path: Path, slot_size: int, count: int = SLOTS) -> None:
        self.path = path
        self.slot_size = -(-slot_size // _PAGE) * _PAGE
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(self._fd, self.slot_size * count)
        self._map = mmap.mmap(self._fd, self.slot_size * count)
        self._slot_type = ctypes.c_char * self.slot_size
        # Last returned, first lent: the same few slots (and pages) serve most requests.
        self._free = list(range(count - 1, -1, -1))
        # Bytes reserved from each slot's start (see _reserve), and when each slot came back.
        self._reserved = [0] * count
        self._returned = [0.0] * count

    def lend(self, size: int) -> memoryview:
        """A buffer of ``size`` bytes for a body: a slot if one fits and is free, else
        ordinary memory."""
        if size > self.slot_size or not self._free or not self._reserve(self._free[-1], size):
            return memoryview(bytearray(size))
        slot = self._free.pop()
        array: Any = self._slot_type.from_buffer(self._map, slot * self.slot_size)
        array.lease = _Lease(self, slot)
        return memoryview(array).cast("B")[:size]

    def _reserve(self, slot: int, size: int) -> bool:
        """Make sure the first ``size`` bytes of a slot have memory. Writing to a page of the
        sparse file that a full ``/dev/shm`` (64 MiB in a default container) cannot back
        would kill the writer with SIGBUS, so memory is reserved before a slot is lent, and
        a slot that cannot have it is not used."""
        have = self._reserved[slot]
        if have >= size:
            return True
        need = min(self.slot_size, -(-size // _RESERVE_STEP) * _RESERVE_STEP)
        try:
            os.posix_fallocate(self._fd, slot * self.slot_size + have, need - have)
        except OSError:
            return False
        self._reserved[slot] = need
        return True

    def capacity(self, slot: int) -> int:
        """How much of a slot an answer may fill: what is reserved of it."""
        return self._reserved[slot]

    def slot_of(self, body: object) -> int | None:
        """The slot a body is in, if it is a view this arena lent."""
        if isinstance(body, memoryview):
            lease = getattr(body.obj, "lease", None)
            if isinstance(lease, _Lease) and lease.arena is self:
                return lease.slot
        return None

    @staticmethod
    def whole(body: memoryview) -> memoryview:
        """The whole slot a lent view is part of (an answer may be longer than the request)."""
        return memoryview(body.obj).cast("B")

    @property
    def free_slots(self) -> int:
        return len(self._free)

    @property
    def reserved(self) -> int:
        """Bytes of memory the slots hold."""
        return sum(self._reserved)

    def trim(self, idle_s: float = IDLE_S) -> int:
        """Give back the memory of slots free for ``idle_s`` seconds; the bytes released.

        Only free slots are trimmed: a slot is free once every view of it is gone, and the
        worker writes only into the slot of a request its peer still holds.
        """
        released = 0
        oldest = time.monotonic() - idle_s
        for slot in self._free:
            if self._reserved[slot] and self._returned[slot] <= oldest:
                start = slot * self.slot_size
                try:
                    self._map.madvise(mmap.MADV_REMOVE, start, self._reserved[slot])
                except OSError:
                    return released  # a file system that cannot punch holes: keep the memory
                released += self._reserved[slot]
                self._reserved[slot] = 0
        return released


async def keep_trimmed(arena: Arena, idle_s: float = IDLE_S) -> None:
    """Trim ``arena`` every so often, for as long as the task runs."""
    while True:
        await asyncio.sleep(idle_s / 3)
        arena.trim(idle_s)


def request_message(
    arena: Arena | None, meta: tuple[Any, ...], body: Sequence[bytes | memoryview]
) -> tuple[tuple[Any, ...], Sequence[bytes | memoryview]]:
    """A request to a worker as sent: ``meta`` and the body, or, for a body in a slot of the
    arena, ``meta`` with the slot, the body's length and the room for the answer appended, and
    no body."""
    slot = arena.slot_of(body[0]) if arena is not None and len(body) == 1 else None
    if slot is None:
        return meta, body
    assert arena is not None
    return (*meta, slot, len(body[0]), arena.capacity(slot)), ()


def answer_body(
    meta: tuple[Any, ...], request: Sequence[bytes | memoryview], body: bytes | memoryview
) -> tuple[tuple[Any, ...], bytes | memoryview]:
    """A worker's answer ``(status, content_type, extra_headers)`` and its body, which is in the
    request's slot when the worker appended the body's length to the meta."""
    if len(meta) == 3:
        return meta, body
    *answer, size = meta
    view = request[0]
    assert isinstance(view, memoryview)
    return tuple(answer), Arena.whole(view)[:size]


class _Lease:
    __slots__ = ("arena", "slot")

    def __init__(self, arena: Arena, slot: int) -> None:
        self.arena = arena
        self.slot = slot

    def __del__(self) -> None:
        self.arena._free.append(self.slot)
        self.arena._returned[self.slot] = time.monotonic()


class Slots:
    """The worker's side: an arena's file, mapped, and its slots by index."""

    def __init__(self, path: str, slot_size: int) -> None:
        with open(path, "r+b") as file:
            self._view = memoryview(mmap.mmap(file.fileno(), 0))
        self.slot_size = slot_size

    def __getitem__(self, index: int) -> memoryview:
        start = index * self.slot_size
        return self._view[start : start + self.slot_size]


def private_folder(prefix: str) -> Path:
    """A new folder only this process uses, in memory where the system offers a writable place
    for it, else in the temporary folder. Its name carries our pid: folders of the same prefix
    left by processes that died are removed first; the owner removes its own when it stops."""
    for root in (Path("/dev/shm"), Path(tempfile.gettempdir())):
        for stale in root.glob(f"{prefix}*-"):
            pid = stale.name.removeprefix(prefix).split("-")[0]
            if pid.isdigit() and not _is_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        with contextlib.suppress(OSError):
            return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", suffix="-", dir=root))
    raise OSError(f"no writable folder for {prefix}* files")


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
