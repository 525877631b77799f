"""Reading Linux's ``/proc``: memory fields of a process, the processes of a process group and
their CPU time. Off Linux, or for processes gone, the readers answer empty or None."""

import os
from typing import Final

_TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def fields_kib(path: str, names: tuple[str, ...]) -> dict[str, int]:
    """The ``Name:  123 kB`` fields of a /proc file (status, smaps_rollup, meminfo) that
    ``names`` lists, in KiB."""
    found: dict[str, int] = {}
    try:
        with open(path) as lines:
            for line in lines:
                name = line.split(maxsplit=1)[0] if line.strip() else ""
                if name in names:
                    found[name] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return {}
    return found


def group_members(pgid: int) -> list[int]:
    """The processes of process group ``pgid``."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and int(stat[2]) == pgid:
                members.append(int(entry))
    return members


def cpu_seconds(pid: int) -> float | None:
    """CPU time of process ``pid`` and of its children it has waited for."""
    stat = _stat(pid)
    if stat is None:
        return None
    # utime, stime, cutime, cstime: fields 14 to 17 of stat(5), 11 to 14 after the name.
    return sum(int(ticks) for ticks in stat[11:15]) / _TICKS_PER_S


def pss_bytes(pid: int) -> int | None:
    """Process ``pid``'s proportional share of memory: summed over processes that share pages,
    the pages count once."""
    pss = fields_kib(f"/proc/{pid}/smaps_rollup", ("Pss:",))
    if pss:
        return pss["Pss:"] * 1024
    rss = fields_kib(f"/proc/{pid}/status", ("VmRSS:",))
    return rss["VmRSS:"] * 1024 if rss else None


def _stat(pid: int) -> list[str] | None:
    """stat(5)'s fields after the command name (which may hold spaces and parentheses)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            text = file.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()
