"""How much memory an instance of a variant may fill with models (multi-model endpoints).

SageMaker sizes an instance's model cache by its instance type; moorage runs instances on one
machine, so the type's memory is capped by half of this machine's. The budget reaches the
instance as ``MOORAGE_MEMORY_BUDGET_MB``, which the runtime enforces by answering 507 to a load
that would not fit.
"""

import os
import re
from typing import Final

MEMORY_BUDGET_VAR: Final = "MOORAGE_MEMORY_BUDGET_MB"

# GiB of memory per vCPU of the general purpose, compute and memory optimized families.
_GIB_PER_VCPU: Final = {"m": 4, "c": 2, "r": 8}
_FAMILY: Final = re.compile(r"ml\.([mcr])[4-8][a-z]*\.(\d*)(x?large)$")
# Burstable and accelerated types do not follow a per-vCPU rule.
_GIB: Final = {
    "ml.t2.medium": 4, "ml.t2.large": 8, "ml.t2.xlarge": 16, "ml.t2.2xlarge": 32,
    "ml.t3.medium": 4, "ml.t3.large": 8, "ml.t3.xlarge": 16, "ml.t3.2xlarge": 32,
    "ml.g4dn.xlarge": 16, "ml.g4dn.2xlarge": 32, "ml.g4dn.4xlarge": 64,
    "ml.g5.xlarge": 16, "ml.g5.2xlarge": 32, "ml.g5.4xlarge": 64,
    "ml.p3.2xlarge": 61, "ml.inf1.xlarge": 8, "ml.inf1.2xlarge": 16,
}  # fmt: skip


def instance_type_memory_mb(instance_type: str | None) -> int | None:
    """The memory of a SageMaker instance type in MiB, or None when moorage does not know it."""
    if instance_type is None:
        return None
    if instance_type in _GIB:
        return _GIB[instance_type] * 1024
    match = _FAMILY.match(instance_type)
    if match is None:
        return None
    family, multiple, size = match.groups()
    vcpus = 2 if size == "large" else 4 * int(multiple or 1)
    return vcpus * _GIB_PER_VCPU[family] * 1024


def machine_memory_mb() -> int:
    """This machine's physical memory in MiB."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError):
        return 8 * 1024


def memory_budget_mb(
    instance_type: str | None,
    *,
    model_setting: str | None,
    server_setting: int | None,
    machine_mb: int | None = None,
) -> int:
    """The model's ``Environment`` setting, else the server's, else min(type, half the machine)."""
    if model_setting:
        return int(model_setting)  # checked at CreateModel
    if server_setting:
        return server_setting
    half = (machine_mb if machine_mb is not None else machine_memory_mb()) // 2
    typed = instance_type_memory_mb(instance_type)
    return min(typed, half) if typed is not None else half
