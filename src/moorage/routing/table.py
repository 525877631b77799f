"""Routes: endpoint → fleets → variants (by weight) → instances.

A request for a single-model variant goes to the instance with the fewest requests in flight
(LEAST_OUTSTANDING_REQUESTS, and KV_AWARE, which falls back to it), to any instance (RANDOM),
or, PREFIX_AWARE, to the instance its body's prefix maps to (:meth:`VariantRoute.pick_for`).

A request for a model of a multi-model variant (``TargetModel``) is placed by
:meth:`VariantRoute.place`:

1. an instance that holds the model loaded, the one with the fewest requests in flight for it;
   if even that one has ``MultiModelSource.busy_at`` (2 per worker) or more, the model is hot:
   the request still goes there, and the model is loaded in the background on the instance
   with the most room among those without it (at most one such spreading load at a time), so
   later requests have two copies to choose from;
2. else an instance where the model is being loaded: the request waits for that load, so
   concurrent first calls load a model once;
3. else (a cold model) the instance with the most room: the fewest models loaded or loading,
   then the fewest requests in flight, ties broken at random.
"""

import asyncio
import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from moorage.capture import VariantCapture
from moorage.contract import frames
from moorage.contract.arena import Arena
from moorage.domain import AsyncInferenceConfig, PrefixRouting
from moorage.http.client import ClientResponse, ConnectionPool
from moorage.metrics import VariantMetrics
from moorage.routing.models import InstanceModels, Loading, MultiModelSource
from moorage.routing.sessions import Sessions
from moorage.routing.workers import WorkerChannels


@dataclass(eq=False, slots=True)
class InstanceRoute:
    instance_id: str
    pool: ConnectionPool
    log_stream_arn: str
    outstanding: int = 0
    # Multi-model instances only.
    models: InstanceModels | None = None
    # The built-in runtime's workers listen on sockets named from this prefix.
    worker_sockets: str | None = None
    # Direct connections to the workers of each model (None: the single model).
    workers: dict[str | None, WorkerChannels] = field(default_factory=dict)
    # The server's shared memory for large bodies, which direct connections pass on.
    arena: Arena | None = None
    # An inference pipeline's instance: its containers by hostname, this one (the first)
    # included, and whether a request goes through them all in order (Serial) or to one.
    containers: dict[str, "InstanceRoute"] = field(default_factory=dict)
    is_serial: bool = False

    def invoke(
        self,
        model_key: str | None,
        headers: Sequence[tuple[str, str]],
        body: Sequence[bytes | memoryview],
        timeout: float,
        stream: bool = False,
    ) -> "asyncio.Future[ClientResponse]":
        """Send an invocation straight to a worker where one is connected, else to the front.

        ``stream``: a 2xx answer over HTTP comes back at its headers, its body as it arrives
        (workers answer whole, so theirs is complete either way). The first container of a
        Serial pipeline passes the request through every container.
        """
        if self.is_serial:
            stages = list(self.containers.values())
            return asyncio.ensure_future(_through(stages, headers, body, timeout))
        return self.invoke_container(model_key, headers, body, timeout, stream)

    def invoke_container(
        self,
        model_key: str | None,
        headers: Sequence[tuple[str, str]],
        body: Sequence[bytes | memoryview],
        timeout: float,
        stream: bool = False,
    ) -> "asyncio.Future[ClientResponse]":
        channels = self._channels(model_key)
        if channels is not None:
            channel = channels.pick()
            if channel is not None:
                return channels.request(channel, headers, model_key, body, timeout)
        path = "/invocations" if model_key is None else f"/models/{model_key}/invoke"
        return self.pool.request("POST", path, headers, body, timeout=timeout, stream=stream)

    async def connect_workers(self, model_key: str | None = None) -> None:
        """Open direct connections to the workers listening now, so the next request uses one."""
        channels = self._channels(model_key)
        if channels is not None:
            await channels.connect()

    def _channels(self, model_key: str | None) -> WorkerChannels | None:
        if self.worker_sockets is None:
            return None
        channels = self.workers.get(model_key)
        if channels is None:
            stem = frames.worker_socket_stem(self.worker_sockets, model_key)
            channels = self.workers[model_key] = WorkerChannels(stem, self.arena)
        return channels

    def forget(self, model_key: str) -> None:
        """Close the direct connections to a model that is unloaded."""
        channels = self.workers.pop(model_key, None)
        if channels is not None:
            channels.close()

    async def close(self) -> None:
        for channels in self.workers.values():
            channels.close()
        self.workers.clear()
        await self.pool.close()
        for container in self.containers.values():
            if container is not self:
                await container.close()


async def _through(
    stages: list[InstanceRoute],
    headers: Sequence[tuple[str, str]],
    body: Sequence[bytes | memoryview],
    timeout_s: float,
) -> ClientResponse:
    """A Serial pipeline: each container's answer is the next one's request, typed by the
    answer's Content-Type; the first answer that is not 2xx, or the last one, is the answer."""
    last = len(stages) - 1
    for index, stage in enumerate(stages):
        answer = await stage.invoke_container(None, headers, body, timeout_s)
        if index == last or not 200 <= answer.status < 300:
            return answer
        content_type = answer.header("content-type")
        headers = [(name, value) for name, value in headers if name != "content-type"]
        if content_type is not None:
            headers.append(("content-type", content_type))
        body = [bytes(answer.body)]
    raise AssertionError("a pipeline has at least one container")


@dataclass(eq=False, slots=True)
class Placement:
    """Where a request for a multi-model target goes (see the module docstring)."""

    instance: InstanceRoute
    models: InstanceModels
    is_loaded: bool = False
    loading: Loading | None = None
    # A hot model: also load it here, in the background.
    spread_to: InstanceRoute | None = None


@dataclass(eq=False, slots=True)
class ServerlessRoute:
    """A serverless variant: requests beyond ``max_concurrency`` in flight are throttled, and
    one that finds no instance asks ``start`` for one (a cold start; one at a time, shared)."""

    max_concurrency: int
    start: Callable[[], "asyncio.Future[None]"]
    in_flight: int = 0
    # Event-loop time of the last answer: the fleet stops idle instances from it.
    last_used: float = 0.0


@dataclass(eq=False, slots=True)
class VariantRoute:
    name: str
    weight: float
    metrics: VariantMetrics
    instances: list[InstanceRoute] = field(default_factory=list)
    multi_model: MultiModelSource | None = None
    serverless: ServerlessRoute | None = None
    # Set when the endpoint captures data: the invocation path's one check when it does not.
    capture: VariantCapture | None = None
    # RoutingStrategy RANDOM; PREFIX_AWARE's settings.
    is_random: bool = False
    prefix: PrefixRouting | None = None

    @property
    def can_serve(self) -> bool:
        """Has an instance, or is serverless and starts one on demand."""
        return bool(self.instances) or self.serverless is not None

    def pick(self) -> InstanceRoute | None:
        """The instance with the fewest requests in flight, ties going to a random one; any
        instance for RANDOM."""
        instances = self.instances
        if not instances:
            return None
        if len(instances) == 1:
            return instances[0]
        start = random.randrange(len(instances))
        best = instances[start]
        if self.is_random:
            return best
        for i in range(1, len(instances)):
            candidate = instances[(start + i) % len(instances)]
            if candidate.outstanding < best.outstanding:
                best = candidate
        return best

    def pick_for(
        self, body: Sequence[bytes | memoryview], prefix_id: str | None
    ) -> InstanceRoute | None:
        """The instance for a request with this body and PrefixAwareId: for PREFIX_AWARE, the
        first, in the order the prefix ranks the instances, with fewer requests in flight than
        the threshold, else the least busy; otherwise as :meth:`pick`.

        The ranking is rendezvous hashing, so an instance added or replaced takes only its
        share of prefixes, and the others keep their instance (and its warm caches)."""
        prefix = self.prefix
        if prefix is None or len(self.instances) < 2:
            return self.pick()
        key = _prefix_key(body, prefix_id, prefix.prefix_length)
        for instance in sorted(self.instances, key=lambda i: _affinity(key, i), reverse=True):
            if instance.outstanding < prefix.concurrency_threshold:
                return instance
        return self.pick()

    def place(self, key: str) -> Placement | None:
        """Where a request for model ``key`` goes (multi-model variants; None: no instance)."""
        holder: InstanceRoute | None = None
        holder_models: InstanceModels | None = None
        in_flight = 0
        loading_at: InstanceRoute | None = None
        loading: Loading | None = None
        for instance in self.instances:
            models = instance.models
            if models is None:
                continue
            model = models.loaded.get(key)
            if model is not None:
                if holder is None or model.in_flight < in_flight:
                    holder, holder_models, in_flight = instance, models, model.in_flight
            elif loading is None:
                loading = models.loading.get(key)
                if loading is not None:
                    loading_at = instance
        if holder is not None:
            assert holder_models is not None
            spread_to = None
            source = self.multi_model
            if (
                loading is None
                and source is not None
                and in_flight >= source.busy_at
                and len(self.instances) > 1
            ):
                spread_to = self._roomiest(key)
            return Placement(holder, holder_models, is_loaded=True, spread_to=spread_to)
        if loading is not None:
            assert loading_at is not None
            assert loading_at.models is not None
            return Placement(loading_at, loading_at.models, loading=loading)
        roomiest = self._roomiest(key)
        if roomiest is None:
            return None
        assert roomiest.models is not None
        return Placement(roomiest, roomiest.models)

    def _roomiest(self, key: str) -> InstanceRoute | None:
        """Among instances without model ``key``: fewest models, then fewest requests."""
        candidates = [
            i
            for i in self.instances
            if i.models is not None and key not in i.models.loaded and key not in i.models.loading
        ]
        if not candidates:
            return None
        random.shuffle(candidates)
        return min(candidates, key=_room_order)


def _prefix_key(body: Sequence[bytes | memoryview], prefix_id: str | None, length: int) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    # A NUL cannot occur in a PrefixAwareId: it ends the id, so id and body cannot run together.
    digest.update((prefix_id or "").encode() + b"\0")
    for part in body:
        if length <= 0:
            break
        piece = part[:length]
        digest.update(piece)
        length -= len(piece)
    return digest.digest()


def _affinity(key: bytes, instance: InstanceRoute) -> bytes:
    return hashlib.blake2b(key + instance.instance_id.encode(), digest_size=8).digest()


def _room_order(instance: InstanceRoute) -> tuple[int, int]:
    assert instance.models is not None
    return instance.models.size, instance.outstanding


@dataclass(eq=False, slots=True)
class FleetRoute:
    """The variants of one endpoint config, as running instances."""

    config_name: str
    variants: dict[str, VariantRoute]

    def choose(self) -> VariantRoute | None:
        """A variant drawn by weight among those with instances (weights need not sum to 1)."""
        live = [v for v in self.variants.values() if v.can_serve and v.weight > 0]
        if not live:
            return None
        if len(live) == 1:
            return live[0]
        point = random.random() * sum(v.weight for v in live)
        for variant in live:
            point -= variant.weight
            if point < 0:
                return variant
        return live[-1]


@dataclass(eq=False, slots=True)
class AsyncRoute:
    """An asynchronous endpoint's settings."""

    config: AsyncInferenceConfig
    per_instance: int  # requests each instance takes at once


@dataclass(eq=False, slots=True)
class EndpointRoute:
    name: str
    current: FleetRoute
    # During a blue/green update: the new fleet and the share of traffic it takes.
    next: FleetRoute | None = None
    next_share: float = 0.0
    is_multi_model: bool = False
    # Asynchronous endpoints take requests through their queue only.
    asynchronous: AsyncRoute | None = None
    # Inference pipelines in Direct mode: the containers TargetContainerHostname may name.
    container_hostnames: frozenset[str] = frozenset()
    sessions: Sessions = field(default_factory=Sessions)

    def instance_count(self) -> int:
        fleets = [self.current] if self.next is None else [self.current, self.next]
        return sum(len(v.instances) for f in fleets for v in f.variants.values() if v.can_serve)

    def choose(self, target_variant: str | None) -> VariantRoute | None:
        if target_variant is not None:
            fleets = [self.current] if self.next is None else [self.next, self.current]
            if self.next is not None and random.random() >= self.next_share:
                fleets.reverse()
            for fleet in fleets:
                variant = fleet.variants.get(target_variant)
                if variant is not None and variant.can_serve:
                    return variant
            return None
        if self.next is not None and random.random() < self.next_share:
            return self.next.choose() or self.current.choose()
        return self.current.choose()

    def has_variant(self, name: str) -> bool:
        return name in self.current.variants or (
            self.next is not None and name in self.next.variants
        )


class RoutingTable:
    """Endpoint names are case-insensitive, as SageMaker's are."""

    def __init__(self, arena: Arena | None = None) -> None:
        self._routes: dict[str, EndpointRoute] = {}
        # Where the HTTP server reads large bodies into, for the workers to read them there.
        self.arena = arena

    def get(self, name: str) -> EndpointRoute | None:
        return self._routes.get(name.lower())

    def set(self, route: EndpointRoute) -> None:
        self._routes[route.name.lower()] = route

    def remove(self, name: str) -> None:
        self._routes.pop(name.lower(), None)

    def routes(self) -> list[EndpointRoute]:
        return list(self._routes.values())
