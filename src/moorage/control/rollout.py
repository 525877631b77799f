"""How traffic moves from the old fleet to the new one during a blue/green update.

``traffic_steps`` turns a ``DeploymentConfig`` into (share of traffic on the new fleet, seconds
to bake at that share) steps: all at once, a canary then the rest, or equal linear steps. With
no ``DeploymentConfig``, traffic moves all at once with no baking, as SageMaker does.
"""

import math
from collections.abc import Mapping
from typing import Any


def _fraction(size: Mapping[str, Any], instances: int) -> float:
    value = float(size.get("Value", 1))
    if size.get("Type") == "INSTANCE_COUNT":
        return min(1.0, value / max(1, instances))
    return min(1.0, value / 100.0)


def traffic_steps(
    deployment_config: Mapping[str, Any] | None, instances: int
) -> list[tuple[float, float]]:
    policy = (deployment_config or {}).get("BlueGreenUpdatePolicy")
    if not policy:
        return [(1.0, 0.0)]
    routing = policy["TrafficRoutingConfiguration"]
    wait = float(routing.get("WaitIntervalInSeconds", 0))
    kind = routing["Type"]
    if kind == "CANARY":
        canary = _fraction(routing.get("CanarySize", {}), instances)
        return [(canary, wait), (1.0, wait)] if canary < 1.0 else [(1.0, wait)]
    if kind == "LINEAR":
        step = _fraction(routing.get("LinearStepSize", {}), instances)
        count = max(1, math.ceil(1.0 / step)) if step > 0 else 1
        return [(min(1.0, step * (i + 1)), wait) for i in range(count)]
    return [(1.0, wait)]
