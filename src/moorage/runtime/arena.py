"""Shared memory for large bodies between the front and its workers.

Why: a 1 MiB body sent over the socket pair is copied into the kernel and out again on each
way, and the front's reads copy it twice more. With a slot of shared memory, the front's HTTP
server has the kernel read the client's body straight into the slot (``BodySink``), the worker
reads it there, and writes its answer back into the same slot when it fits; only small frames
cross the socket pair. Measured on the shared bench's 1 MiB echo, this is most of what the
instance costs beyond a bare HTTP server.

One file in the front's private status folder (in ``/dev/shm`` where it is writable), divided
into slots of ``slot_size`` bytes (the payload limit, rounded up to a page). Pages are only
used once touched, and slots are lent last-returned-first, so the memory in use follows the
largest bodies seen at once, at most ``count * slot_size``. A body that does not fit, or finds
every slot taken, is read into ordinary memory and sent over the socket as before.

A slot is lent with a :class:`Lease`; it is given back when nothing refers to the lease any
more: the request, and the pool's record of it, which is kept until the worker has answered
(a timed-out request's slot stays taken until its late answer, so the worker never writes into
a slot lent again). Reference counting makes that immediate, on every path a request can
end by (answered, rejected, the client gone mid-body).
"""

import mmap
import os
from pathlib import Path

_PAGE = mmap.PAGESIZE


class Arena:
    """The front's side: lends slots."""

    def __init__(self, path: Path, slot_size: int, count: int) -> None:
        self.path = path
        self.slot_size = -(-slot_size // _PAGE) * _PAGE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.slot_size * count)
            self._view = memoryview(mmap.mmap(fd, self.slot_size * count))
        finally:
            os.close(fd)
        # Last returned, first lent: the same few slots (and pages) serve most requests.
        self._free = list(range(count - 1, -1, -1))

    def lend(self, size: int) -> "tuple[memoryview, Lease | None]":
        """A buffer of ``size`` bytes for a body: a slot if one fits and is free (with the
        lease that holds it), else ordinary memory."""
        if size > self.slot_size or not self._free:
            return memoryview(bytearray(size)), None
        slot = self._free.pop()
        return self.slot(slot)[:size], Lease(self, slot)

    def slot(self, index: int) -> memoryview:
        start = index * self.slot_size
        return self._view[start : start + self.slot_size]

    def give_back(self, slot: int) -> None:
        self._free.append(slot)

    @property
    def free_slots(self) -> int:
        return len(self._free)


class Lease:
    """Holds one slot while a request or its answer is in it; see the module's docstring."""

    __slots__ = ("_arena", "slot")

    def __init__(self, arena: Arena, slot: int) -> None:
        self._arena = arena
        self.slot = slot

    @property
    def view(self) -> memoryview:
        return self._arena.slot(self.slot)

    def __del__(self) -> None:
        self._arena.give_back(self.slot)


class Slots:
    """A worker's side: the same file, mapped, and its slots by index."""

    def __init__(self, path: str, slot_size: int) -> None:
        with open(path, "r+b") as file:
            self._view = memoryview(mmap.mmap(file.fileno(), 0))
        self.slot_size = slot_size

    def __getitem__(self, index: int) -> memoryview:
        start = index * self.slot_size
        return self._view[start : start + self.slot_size]
