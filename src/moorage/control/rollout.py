"""How traffic moves from the old fleet to the new one during an update.

``traffic_steps`` turns a ``DeploymentConfig`` into (share of traffic on the new fleet, seconds
to bake at that share) steps: all at once, a canary then the rest, or equal linear steps. With
no ``DeploymentConfig``, traffic moves all at once with no baking, as SageMaker does.
``rolling_batch`` is how many instances a rolling update replaces at a time.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moorage.control.alarms import Alarm, parse_alarm


@dataclass(frozen=True)
class Plan:
    """How one update runs: blue/green ``steps``, or rolling ``batch`` instances at a time."""

    steps: list[tuple[float, float]]
    batch: int | None = None
    rollback_batch: int | None = None
    wait_s: float = 0.0
    alarms: tuple[Alarm, ...] = ()
    timeout_s: float | None = None
    termination_wait_s: float = 0.0


def plan(
    deployment_config: Mapping[str, Any] | None,
    instances: int,
    *,
    old_instances: int,
    is_guarded: bool,
    can_roll: bool,
) -> Plan:
    """The update from a fleet of ``old_instances`` to one of ``instances``. Guardrails apply
    only to instance-based fleets (``is_guarded``), a rolling update only from one
    instance-based variant to one (``can_roll``); elsewhere SageMaker falls back to blue/green
    all at once with no baking."""
    config = deployment_config or {}
    rolling = config.get("RollingUpdatePolicy")
    if not is_guarded or (rolling and not can_roll):
        return Plan([(1.0, 0.0)])
    alarms = tuple(
        parse_alarm(a["AlarmName"])
        for a in (config.get("AutoRollbackConfiguration") or {}).get("Alarms", ())
    )
    if rolling:
        rollback = rolling.get(
            "RollbackMaximumBatchSize", {"Type": "CAPACITY_PERCENT", "Value": 100}
        )
        return Plan(
            [],
            batch=rolling_batch(rolling["MaximumBatchSize"], instances),
            rollback_batch=rolling_batch(rollback, old_instances),
            wait_s=float(rolling["WaitIntervalInSeconds"]),
            alarms=alarms,
            timeout_s=_float(rolling.get("MaximumExecutionTimeoutInSeconds")),
        )
    policy = config.get("BlueGreenUpdatePolicy") or {}
    return Plan(
        traffic_steps(config, instances),
        alarms=alarms,
        timeout_s=_float(policy.get("MaximumExecutionTimeoutInSeconds")),
        termination_wait_s=float(policy.get("TerminationWaitInSeconds", 0)),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def share(size: Mapping[str, Any], instances: int) -> float:
    """A ``CapacitySize`` as a share of ``instances`` (above 1 when it is more than all)."""
    value = float(size.get("Value", 1))
    if size.get("Type") == "INSTANCE_COUNT":
        return value / max(1, instances)
    return value / 100.0


def _fraction(size: Mapping[str, Any], instances: int) -> float:
    return min(1.0, share(size, instances))


def rolling_batch(size: Mapping[str, Any], instances: int) -> int:
    """Instances per batch: the size rounded up, so that every batch moves at least one."""
    return max(1, min(instances, math.ceil(_fraction(size, instances) * instances - 1e-9)))


def summed_waits(deployment_config: Mapping[str, Any], instances: int) -> float:
    """Seconds a deployment spends waiting on purpose: baking after each step or batch, and
    TerminationWaitInSeconds (MaximumExecutionTimeoutInSeconds must be more)."""
    rolling = deployment_config.get("RollingUpdatePolicy")
    if rolling:
        batches = math.ceil(instances / rolling_batch(rolling["MaximumBatchSize"], instances))
        return batches * float(rolling["WaitIntervalInSeconds"])
    policy = deployment_config.get("BlueGreenUpdatePolicy") or {}
    steps = traffic_steps(deployment_config, instances)
    return sum(wait for _, wait in steps) + float(policy.get("TerminationWaitInSeconds", 0))


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
