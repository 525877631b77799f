"""Instance providers: start, watch and stop the processes that serve a variant.

One provider today, local processes (the built-in runtime or a user's serve command); a cluster
engine can implement the same methods later. Knows nothing of routing or the store.
"""

from moorage.fleet.images import ImageKind, classify_image
from moorage.fleet.local import Instance, InstanceSpec, LocalProcessFleet

__all__ = ["ImageKind", "Instance", "InstanceSpec", "LocalProcessFleet", "classify_image"]
