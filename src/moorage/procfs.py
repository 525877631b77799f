"""Reading Linux's ``/proc``: memory fields of a process, the processes of process groups and
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


def groups(pgids: set[int]) -> dict[int, list[tuple[int, float]]]:
    """The processes of each process group in ``pgids``, with each one's CPU seconds (its
    own, and its waited-for children's): one pass over /proc."""
    found: dict[int, list[tuple[int, float]]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        # A zombie has ended: it holds nothing, and lingers where nothing reaps it.
        if stat is not None and stat[0] != "Z" and (pgid := int(stat[2])) in pgids:
            # utime, stime, cutime, cstime: fields 14 to 17 of stat(5), 11 to 14 here.
            cpu = sum(int(ticks) for ticks in stat[11:15]) / _TICKS_PER_S
            found.setdefault(pgid, []).append((int(entry), cpu))
    return found


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
