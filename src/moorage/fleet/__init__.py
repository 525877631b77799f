"""Instance providers: start, watch and stop the processes that serve a variant.

One provider today, local processes (the built-in runtime or a user's serve command); a cluster
engine can implement the same methods later; and what an instance may hold (``memory``: the
multi-model memory budget of an instance type). Knows nothing of routing or the store.
"""

from moorage.fleet.images import ImageKind, classify_image
from moorage.fleet.local import Instance, InstanceSpec, LocalProcessFleet
from moorage.fleet.logs import log_streams, tail
from moorage.fleet.memory import MEMORY_BUDGET_VAR, memory_budget_mb

__all__ = [
    "MEMORY_BUDGET_VAR",
    "ImageKind",
    "Instance",
    "InstanceSpec",
    "LocalProcessFleet",
    "classify_image",
    "log_streams",
    "memory_budget_mb",
    "tail",
]
