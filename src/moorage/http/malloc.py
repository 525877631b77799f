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


def tune() -> None:
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc
    # mmap's threshold is capped by glibc at 32 MiB on 64-bit; bodies above it stay mmapped.
    mallopt(_M_MMAP_THRESHOLD, min(_THRESHOLD, 32 * 1024 * 1024))
    mallopt(_M_TRIM_THRESHOLD, _THRESHOLD)
