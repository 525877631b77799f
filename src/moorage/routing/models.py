"""What one instance of a multi-model endpoint holds: loaded models in LRU order, loads under way.

Only the event loop thread touches it, so a hit takes no lock: a dict lookup and a move to the
most-recently-used end. Each model being loaded has one :class:`Loading`, whose future every
request for that model on that instance waits on: a slow load holds up only its own model.
"""

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from moorage.artifacts import Lease
from moorage.routing.targets import ModelPrefix

# A holder whose copy of a model has this many requests in flight per worker is busy: the
# next request loads the model on another instance too (spec/LIMITS.md §6, "hot models spread").
BUSY_PER_WORKER: Final = 2


@dataclass(frozen=True, slots=True)
class MultiModelSource:
    """A multi-model variant's models: where they come from and how instances keep them."""

    prefix: ModelPrefix
    # ModelCacheSetting=Disabled: unload after each invocation.
    is_cache_enabled: bool = True
    # Workers each loaded model gets on an instance (SAGEMAKER_MODEL_SERVER_WORKERS).
    workers: int = 1
    # A user's serve command gets a local folder to load, as SageMaker's platform downloads
    # for the container; the built-in runtime fetches the URL itself, with its digest cache.
    is_fetched_here: bool = False

    @property
    def busy_at(self) -> int:
        return BUSY_PER_WORKER * self.workers


@dataclass(eq=False, slots=True)
class LoadedModel:
    key: str
    target: str
    in_flight: int = 0


@dataclass(eq=False, slots=True)
class Loading:
    """A load under way; ``waiters`` are requests that will invoke the model once it is in."""

    key: str
    target: str
    future: "asyncio.Future[LoadedModel]"
    waiters: int = 0
    # Waiting for memory to be freed by models in use (a 507 with nothing idle to unload).
    is_parked: bool = False


@dataclass(eq=False, slots=True)
class InstanceModels:
    # Least recently used first.
    loaded: OrderedDict[str, LoadedModel] = field(default_factory=OrderedDict)
    loading: dict[str, Loading] = field(default_factory=dict)
    unloading: dict[str, "asyncio.Future[None]"] = field(default_factory=dict)
    # Folders fetched here for a user's container (``is_fetched_here``), by model key: kept on
    # disk while the container may read them.
    leases: dict[str, Lease] = field(default_factory=dict)
    _parked: list["asyncio.Future[None]"] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Models in memory or on their way: what placement compares to find room."""
        return len(self.loaded) + len(self.loading)

    def hit(self, key: str) -> LoadedModel | None:
        """The loaded model ``key``, marked most recently used and counted in flight."""
        model = self.loaded.get(key)
        if model is not None:
            self.loaded.move_to_end(key)
            model.in_flight += 1
        return model

    def release(self, model: LoadedModel) -> None:
        """A request to ``model`` was answered."""
        model.in_flight -= 1
        if model.in_flight == 0:
            self.notify()

    def idle_victim(self, keep: str) -> LoadedModel | None:
        """The least recently used loaded model with nothing in flight, other than ``keep``."""
        for key, model in self.loaded.items():
            if model.in_flight == 0 and key != keep:
                return model
        return None

    def will_free_memory(self, keep: str) -> bool:
        """Whether something in progress here will settle and may leave room: a model in use,
        another load that is not itself waiting for room, or an unload."""
        return (
            bool(self.unloading)
            or any(m.in_flight > 0 for m in self.loaded.values())
            or any(k != keep and not load.is_parked for k, load in self.loading.items())
        )

    def park(self) -> "asyncio.Future[None]":
        """A future that completes at the next change that may free memory."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._parked.append(waiter)
        return waiter

    def release_leases(self) -> None:
        """The instance is gone: the folders it loaded may be evicted."""
        leases, self.leases = self.leases, {}
        for lease in leases.values():
            lease.release()

    def notify(self) -> None:
        if self._parked:
            parked, self._parked = self._parked, []
            for waiter in parked:
                if not waiter.done():
                    waiter.set_result(None)
