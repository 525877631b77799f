"""What instances use of this machine, for SageMaker's instance metrics (spec/LIMITS.md §7):
``CPUUtilization`` (percent of one core, summed over cores) and ``MemoryUtilization`` (percent
of the instance type's memory).

An instance is a process group (its front, workers and anything they start), so a reading sums
the group. CPU is the share of wall time spent on CPU since the previous reading; memory is
PSS, so pages the forked workers share count once.
"""

import time
from dataclasses import dataclass

from moorage import procfs


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_percent: float
    memory_bytes: int


class UsageMeter:
    def __init__(self) -> None:
        # Per process group: CPU seconds and the time they were read.
        self._last: dict[int, tuple[float, float]] = {}

    def read(self, pgid: int) -> Usage | None:
        """The group's usage since the previous reading (since this meter first saw it, on the
        first), or None once it is gone."""
        members = procfs.group_members(pgid)
        if not members:
            self._last.pop(pgid, None)
            return None
        now = time.monotonic()
        cpu = sum(procfs.cpu_seconds(pid) or 0.0 for pid in members)
        before_cpu, before = self._last.get(pgid, (cpu, now))
        self._last[pgid] = (cpu, now)
        elapsed = now - before
        percent = 100.0 * max(0.0, cpu - before_cpu) / elapsed if elapsed > 0 else 0.0
        memory = sum(procfs.pss_bytes(pid) or 0 for pid in members)
        return Usage(cpu_percent=percent, memory_bytes=memory)

    def forget(self, live: set[int]) -> None:
        """Drop what is kept of groups not in ``live`` (instances stopped since)."""
        for pgid in self._last.keys() - live:
            del self._last[pgid]
