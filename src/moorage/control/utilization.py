"""SageMaker's instance metrics for the fleets a server runs (spec/LIMITS.md §7), per variant:
``CPUUtilization`` (percent of one core, summed over cores), ``MemoryUtilization`` (percent of
the instance type's memory, or of a serverless variant's MemorySizeInMB) and
``DiskUtilization`` (percent of the data dir's disk in use), each averaged over the variant's
instances. Serverless variants report memory only, as SageMaker's do.
"""

import os
from collections.abc import Iterable
from pathlib import Path
from statistics import fmean

from moorage.control.fleets import RunningFleet, RunningVariant
from moorage.fleet.memory import instance_type_memory_mb, machine_memory_mb
from moorage.fleet.usage import UsageMeter
from moorage.metrics import Utilization


class FleetUsage:
    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._meter = UsageMeter()

    def read(self, fleets: Iterable[RunningFleet]) -> dict[tuple[str, str], Utilization]:
        """By (endpoint, variant); variants with no instance running are left out."""
        variants = [(f.endpoint, name, v) for f in fleets for name, v in f.variants.items()]
        groups = {p.pid for _, _, v in variants for i in v.instances for p in i.processes}
        usages = self._meter.read(groups)
        disk = _disk_percent(self._data_dir)
        found = {}
        for endpoint, name, variant in variants:
            cpu, memory = [], []
            for instance in variant.instances:
                read = [usages[p.pid] for p in instance.processes if p.pid in usages]
                if read:
                    cpu.append(sum(u.cpu_percent for u in read))
                    memory.append(100.0 * sum(u.memory_bytes for u in read) / _memory(variant))
            if not memory:
                continue
            is_serverless = variant.variant.serverless_config is not None
            found[(endpoint, name)] = Utilization(
                cpu_percent=None if is_serverless else fmean(cpu),
                memory_percent=fmean(memory),
                disk_percent=None if is_serverless else disk,
            )
        return found


def _memory(variant: RunningVariant) -> int:
    """Bytes of memory one instance of the variant has, as SageMaker sizes it."""
    serverless = variant.variant.serverless_config
    if serverless is not None:
        megabytes = serverless.memory_size_in_mb
    else:
        megabytes = instance_type_memory_mb(variant.variant.instance_type) or machine_memory_mb()
    return megabytes * 2**20


def _disk_percent(folder: Path) -> float | None:
    try:
        disk = os.statvfs(folder)
    except OSError:
        return None
    used = disk.f_blocks - disk.f_bfree
    if used + disk.f_bavail == 0:
        return None
    # As df counts: of the blocks an unprivileged user can have, the share in use.
    return 100.0 * used / (used + disk.f_bavail)
