"""What the instance's processes hold in memory, read from ``/proc`` (Linux; None elsewhere).

A worker's cost is its private memory (USS: ``Private_Clean + Private_Dirty`` of
``/proc/PID/smaps_rollup``), which is what unloading its model gives back. Forked workers share
the zygote's pages (interpreter, numpy, scikit-learn: ~70 MiB), so RSS would count those once
per worker and make thirty tiny models look like gigabytes. PSS counts a share of them, but the
share shrinks as siblings are added (a tiny model measured 48 MiB alone, 15 MiB among ten), so
a model's cost, and estimates made from it, would drift with the others. Where smaps_rollup
cannot be read (kernels before 4.14), RSS from ``/proc/PID/status`` stands in: an overestimate.
"""

from collections.abc import Iterable
from pathlib import Path

from moorage.procfs import fields_kib


def process_memory(pid: int) -> int | None:
    """Bytes of memory process ``pid`` alone holds (USS), else its RSS; None if unreadable."""
    fields = fields_kib(f"/proc/{pid}/smaps_rollup", ("Private_Clean:", "Private_Dirty:"))
    if len(fields) == 2:
        return sum(fields.values()) * 1024
    rss = fields_kib(f"/proc/{pid}/status", ("VmRSS:",))
    return rss["VmRSS:"] * 1024 if rss else None


def processes_memory(pids: Iterable[int]) -> int:
    """Bytes the processes hold together, by ``process_memory``; those gone count 0."""
    return sum(process_memory(pid) or 0 for pid in pids)


def memory_available() -> int | None:
    """Bytes the kernel could give to a new process without swapping (None off Linux)."""
    value = fields_kib("/proc/meminfo", ("MemAvailable:",))
    return value["MemAvailable:"] * 1024 if value else None


def tree_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links not followed)."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total
