"""In-memory routing: which instance answers a request for an endpoint.

Per endpoint: its fleets (the serving one, and during a blue/green update the next one with its
share of traffic), variants with weights, instances with outstanding-request counts and their
pooled clients; for multi-model variants, which models each instance holds and the loads under
way (``models``, ``loading``), and how a target resolves to model data (``targets``). The
reconciler builds and swaps routes; the invocation path reads them and keeps the per-instance
model state, never touching the store; and where each stateful session lives (``sessions``).
"""

from moorage.routing.loading import ModelLoader
from moorage.routing.models import InstanceModels, LoadedModel, Loading, MultiModelSource
from moorage.routing.sessions import NEW_SESSION, Sessions
from moorage.routing.table import (
    AsyncRoute,
    EndpointRoute,
    FleetRoute,
    InstanceRoute,
    Placement,
    RoutingTable,
    ServerlessRoute,
    VariantRoute,
)
from moorage.routing.targets import ModelPrefix, TargetChecker, model_key, target_problem

__all__ = [
    "NEW_SESSION",
    "AsyncRoute",
    "EndpointRoute",
    "FleetRoute",
    "InstanceModels",
    "InstanceRoute",
    "LoadedModel",
    "Loading",
    "ModelLoader",
    "ModelPrefix",
    "MultiModelSource",
    "Placement",
    "RoutingTable",
    "ServerlessRoute",
    "Sessions",
    "TargetChecker",
    "VariantRoute",
    "model_key",
    "target_problem",
]
