"""Routes: endpoint → fleets → variants (by weight) → instances (fewest outstanding)."""

import random
from dataclasses import dataclass, field

from moorage.http.client import ConnectionPool
from moorage.metrics import VariantMetrics


@dataclass(eq=False, slots=True)
class InstanceRoute:
    instance_id: str
    pool: ConnectionPool
    log_stream_arn: str
    outstanding: int = 0


@dataclass(eq=False, slots=True)
class VariantRoute:
    name: str
    weight: float
    metrics: VariantMetrics
    instances: list[InstanceRoute] = field(default_factory=list)

    def pick(self) -> InstanceRoute | None:
        """The instance with the fewest requests in flight; ties go to a random one."""
        instances = self.instances
        if not instances:
            return None
        if len(instances) == 1:
            return instances[0]
        start = random.randrange(len(instances))
        best = instances[start]
        for i in range(1, len(instances)):
            candidate = instances[(start + i) % len(instances)]
            if candidate.outstanding < best.outstanding:
                best = candidate
        return best


@dataclass(eq=False, slots=True)
class FleetRoute:
    """The variants of one endpoint config, as running instances."""

    config_name: str
    variants: dict[str, VariantRoute]

    def choose(self) -> VariantRoute | None:
        """A variant drawn by weight among those with instances (weights need not sum to 1)."""
        live = [v for v in self.variants.values() if v.instances and v.weight > 0]
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
class EndpointRoute:
    name: str
    current: FleetRoute
    # During a blue/green update: the new fleet and the share of traffic it takes.
    next: FleetRoute | None = None
    next_share: float = 0.0
    is_multi_model: bool = False

    def choose(self, target_variant: str | None) -> VariantRoute | None:
        if target_variant is not None:
            fleets = [self.current] if self.next is None else [self.next, self.current]
            if self.next is not None and random.random() >= self.next_share:
                fleets.reverse()
            for fleet in fleets:
                variant = fleet.variants.get(target_variant)
                if variant is not None and variant.instances:
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

    def __init__(self) -> None:
        self._routes: dict[str, EndpointRoute] = {}

    def get(self, name: str) -> EndpointRoute | None:
        return self._routes.get(name.lower())

    def set(self, route: EndpointRoute) -> None:
        self._routes[route.name.lower()] = route

    def remove(self, name: str) -> None:
        self._routes.pop(name.lower(), None)
