"""glibc malloc tuning for processes that move large bodies.

By default glibc returns freed heap to the kernel after each large request, so the next one
faults fresh pages; raising the trim and mmap thresholds roughly halved the cost of a 1 MiB
request here (PERFORMANCE.md). ``mallopt`` does at run time what ``MALLOC_*_`` variables do
at exec time, so no re-exec is needed.
"""

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 256 * 1024 * 1024


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def trim() -> None:
    """Give the heap freed by start-up work back to the kernel, before ``tune`` stops that."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def tune() -> None:
    libc = _libc()
    if libc is None:
        return  # not glibc
    mallopt = libc.mallopt
    # mmap's threshold is capped by glibc at 32 MiB on 64-bit; bodies above it stay mmapped.
    mallopt(_M_MMAP_THRESHOLD, min(_THRESHOLD, 32 * 1024 * 1024))
    mallopt(_M_TRIM_THRESHOLD, _THRESHOLD)
