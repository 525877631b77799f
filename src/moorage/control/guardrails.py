"""The rules of SageMaker's deployment guardrails (spec/LIMITS.md §8) that botocore's model
cannot express, since they relate one member to another or to the endpoint config.

``api.validation`` already holds each number to its range from the model: WaitIntervalInSeconds
and TerminationWaitInSeconds 0-3600, MaximumExecutionTimeoutInSeconds 600-28800, a
CapacitySize's Value at least 1, 1 to 10 Alarms.
"""

from collections.abc import Mapping
from typing import Any

from moorage.control.alarms import parse_alarm
from moorage.control.rollout import share, summed_waits
from moorage.errors import ValidationError

# Member -> (least, most) percent of a variant's instances.
_SIZES = {
    "CanarySize": (0.0, 50.0),
    "LinearStepSize": (10.0, 50.0),
    "MaximumBatchSize": (5.0, 50.0),
}


def check_deployment_config(
    deployment: Mapping[str, Any] | None, instances: Mapping[str, int]
) -> None:
    """Raise ValidationError for a DeploymentConfig that cannot guard a deployment of
    ``instances`` (the instance count of each instance-based variant; none for a serverless
    endpoint, whose deployments fall back to blue/green all at once, as SageMaker's do)."""
    if not deployment:
        return
    blue_green = deployment.get("BlueGreenUpdatePolicy")
    rolling = deployment.get("RollingUpdatePolicy")
    if blue_green and rolling:
        raise ValidationError(
            "DeploymentConfig takes one update policy: BlueGreenUpdatePolicy or "
            "RollingUpdatePolicy, not both."
        )
    for alarm in (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms", ()):
        parse_alarm(alarm["AlarmName"])
    if not instances:
        return
    sizes: dict[str, Mapping[str, Any]] = {}
    timeout = None
    if blue_green:
        routing = blue_green["TrafficRoutingConfiguration"]
        needed = {"CANARY": "CanarySize", "LINEAR": "LinearStepSize"}.get(routing["Type"])
        if needed is not None and needed not in routing:
            raise ValidationError(
                f"TrafficRoutingConfiguration of Type {routing['Type']} needs {needed}."
            )
        sizes = {m: routing[m] for m in ("CanarySize", "LinearStepSize") if m in routing}
        timeout = blue_green.get("MaximumExecutionTimeoutInSeconds")
    elif rolling:
        sizes = {"MaximumBatchSize": rolling["MaximumBatchSize"]}
        timeout = rolling.get("MaximumExecutionTimeoutInSeconds")
    for member, size in sizes.items():
        for variant, count in instances.items():
            _check_size(member, size, variant, count)
    waits = summed_waits(deployment, sum(instances.values()))
    if timeout is not None and timeout <= waits:
        raise ValidationError(
            f"MaximumExecutionTimeoutInSeconds ({timeout}) must be larger than the deployment's "
            f"summed waiting time, {waits:g} s (WaitIntervalInSeconds after each step, and "
            "TerminationWaitInSeconds)."
        )


def _check_size(member: str, size: Mapping[str, Any], variant: str, instances: int) -> None:
    least, most = _SIZES[member]
    percent = share(size, instances) * 100
    if least <= percent <= most:
        return
    if size["Type"] == "INSTANCE_COUNT":
        written = f"{size['Value']} of the {instances} instances ({percent:g} %)"
    else:
        written = f"{size['Value']} %"
    bounds = f"between {least:g} % and {most:g} %" if least else f"at most {most:g} %"
    raise ValidationError(
        f"{member} is {written} of variant {variant}; it must be {bounds} of the variant's "
        "instances."
    )
