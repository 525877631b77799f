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

    def read(self, pgids: set[int]) -> dict[int, Usage]:
        """Each group's usage since the previous reading (since this meter first saw it, on
        the first); groups gone are left out, and forgotten."""
        now = time.monotonic()
        usages = {}
        for pgid, members in procfs.groups(pgids).items():
            cpu = sum(seconds for _, seconds in members)
            before_cpu, before = self._last.get(pgid, (cpu, now))
            self._last[pgid] = (cpu, now)
            elapsed = now - before
            percent = 100.0 * max(0.0, cpu - before_cpu) / elapsed if elapsed > 0 else 0.0
            memory = sum(procfs.pss_bytes(pid) or 0 for pid, _ in members)
            usages[pgid] = Usage(cpu_percent=percent, memory_bytes=memory)
        for pgid in self._last.keys() - usages.keys():
            del self._last[pgid]
        return usages
