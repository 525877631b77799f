"""In-memory routing: which instance answers a request for an endpoint.

Per endpoint: its fleets (the serving one, and during a blue/green update the next one with its
share of traffic), variants with weights, instances with outstanding-request counts and their
pooled clients. The reconciler builds and swaps routes; the invocation path only reads them,
never the store.
"""

from moorage.routing.table import (
    EndpointRoute,
    FleetRoute,
    InstanceRoute,
    RoutingTable,
    VariantRoute,
)

__all__ = ["EndpointRoute", "FleetRoute", "InstanceRoute", "RoutingTable", "VariantRoute"]
