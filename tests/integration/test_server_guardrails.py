"""Deployment guardrails of UpdateEndpoint: DeploymentConfig checks, alarms that roll an update
back, rolling updates."""

import threading

import pytest
from botocore.exceptions import ClientError

from tests.integration.instance import wait_until
from tests.integration.server import FAST_WAITER, running_server
from tests.integration.test_server_fleet import (
    Stream,
    _instance_pids,
    create_config,
    create_endpoint,
    create_model,
    variant,
)


def size(kind: str, value: int) -> dict:
    return {"Type": kind, "Value": value}


def canary(wait_s: int, step: dict | None = None, **policy) -> dict:
    step = step or size("CAPACITY_PERCENT", 50)
    routing = {"Type": "CANARY", "WaitIntervalInSeconds": wait_s, "CanarySize": step}
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, **policy}}


def alarms(*names: str) -> dict:
    return {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": n} for n in names]}}


def linear(step: dict, wait_s: int = 1, **policy) -> dict:
    routing = {"Type": "LINEAR", "WaitIntervalInSeconds": wait_s, "LinearStepSize": step}
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, **policy}}


def rolling(batch: dict, wait_s: int = 1) -> dict:
    return {"RollingUpdatePolicy": {"MaximumBatchSize": batch, "WaitIntervalInSeconds": wait_s}}


@pytest.mark.parametrize(
    ("deployment", "says"),
    [
        (canary(1, size("INSTANCE_COUNT", 2)), "CanarySize is 2 of the 2 instances"),
        (canary(1, size("CAPACITY_PERCENT", 51)), "at most 50 %"),
        (linear(size("CAPACITY_PERCENT", 9)), "between 10 % and 50 %"),
        (linear(size("INSTANCE_COUNT", 2)), "LinearStepSize is 2 of the 2 instances"),
        (rolling(size("CAPACITY_PERCENT", 4)), "between 5 % and 50 %"),
        (rolling(size("CAPACITY_PERCENT", 51)), "MaximumBatchSize is 51 %"),
        (
            linear(size("CAPACITY_PERCENT", 10), 300, MaximumExecutionTimeoutInSeconds=3000),
            "summed waiting time, 3000 s",
        ),
        (canary(1) | rolling(size("INSTANCE_COUNT", 1)), "not both"),
        (canary(1) | alarms("churn-5xx-alarm"), "'<Metric> [<Statistic>] > <Threshold>'"),
        (canary(1) | alarms("ModelLatency p99 > 5%"), "is a time"),
        # The model's own ranges, which botocore's client does not check.
        (canary(3601), "Member must have value less than or equal to 3600"),
        (canary(1, TerminationWaitInSeconds=3601), "less than or equal to 3600"),
        (canary(1, MaximumExecutionTimeoutInSeconds=599), "greater than or equal to 600"),
        (canary(1, MaximumExecutionTimeoutInSeconds=28801), "less than or equal to 28800"),
        (canary(1) | alarms(), "length greater than or equal to 1"),
        (canary(1) | alarms(*(f"ModelLatency p{n} > 1s" for n in range(1, 12))), "less than or"),
    ],
)
def test_create_endpoint_refuses_a_deployment_config_out_of_range(
    server, artifacts, deployment, says
):
    sm = server.client("sagemaker", parameter_validation=False)
    config = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"]), count=2))
    with pytest.raises(ClientError) as caught:
        sm.create_endpoint(
            EndpointName="guarded", EndpointConfigName=config, DeploymentConfig=deployment
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert says in caught.value.response["Error"]["Message"]


def test_update_endpoint_refuses_a_canary_over_half_the_instances(sm, artifacts):
    config = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"])))
    endpoint = create_endpoint(sm, config)
    with pytest.raises(sm.exceptions.ClientError, match="at most 50 %"):
        sm.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=config,
            DeploymentConfig=canary(1, size("INSTANCE_COUNT", 1)),
        )
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"


def test_alarm_on_the_new_fleet_rolls_the_update_back(sm, runtime, artifacts):
    blue = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["echo"])))
    green = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"])))
    endpoint = create_endpoint(sm, blue)
    with Stream(runtime, endpoint) as stream:
        sm.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=green,
            DeploymentConfig=canary(30) | alarms("Invocation5XXErrors > 0"),
        )
        wait_until(lambda: "iris" in stream.answers, timeout=30)
        # The new model cannot read this body (a 5xx); the old one answers anything.
        statuses = []
        while not statuses or statuses[-1] == "Updating":
            try:
                runtime.invoke_endpoint(EndpointName=endpoint, Body=b"[[not json")
            except runtime.exceptions.ModelError:
                pass
            statuses.append(sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"])
        sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
        settled = len(stream.answers)
        wait_until(lambda: len(stream.answers) > settled + 20)
    assert statuses[-1] in ("RollingBack", "InService")
    assert stream.failures == []
    assert set(stream.answers[settled:]) == {"echo"}
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointConfigName"] == blue
    assert (
        "Alarm 'Invocation5XXErrors > 0' fired on variant AllTraffic"
        in (described["FailureReason"])
    )
    assert "PendingDeploymentSummary" not in described


def test_alarm_that_does_not_fire_lets_the_update_complete(sm, runtime, artifacts):
    blue = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"])))
    green = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["echo"])))
    endpoint = create_endpoint(sm, blue)
    deployment = canary(1) | alarms("Invocation5XXErrors > 0", "ModelLatency p99 > 30s")
    with Stream(runtime, endpoint) as stream:
        sm.update_endpoint(
            EndpointName=endpoint, EndpointConfigName=green, DeploymentConfig=deployment
        )
        sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    assert stream.failures == []
    assert "echo" in stream.answers
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointConfigName"] == green
    assert "FailureReason" not in described
    assert described["LastDeploymentConfig"] == deployment


class InstanceCounter:
    """Counts the server's instance processes in a thread; ``most`` is the highest count seen."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.most = max(self.most, len(_instance_pids(self.server_pid)))

    def __enter__(self) -> "InstanceCounter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def test_rolling_update_replaces_instances_a_batch_at_a_time(tmp_path, artifacts):
    with running_server(tmp_path / "data") as server:
        sm, runtime = server.client("sagemaker"), server.client("sagemaker-runtime")
        blue = create_config(
            sm, variant("AllTraffic", create_model(sm, artifacts["iris"]), count=2)
        )
        green = create_config(
            sm, variant("AllTraffic", create_model(sm, artifacts["echo"]), count=2)
        )
        endpoint = create_endpoint(sm, blue)
        deployment = rolling(size("INSTANCE_COUNT", 1))
        with InstanceCounter(server.process.pid) as counter, Stream(runtime, endpoint) as stream:
            sm.update_endpoint(
                EndpointName=endpoint, EndpointConfigName=green, DeploymentConfig=deployment
            )
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName=endpoint, WaiterConfig=FAST_WAITER
            )
            settled = len(stream.answers)
            wait_until(lambda: len(stream.answers) > settled + 20)
        assert stream.failures == []
        assert set(stream.answers[settled:]) == {"echo"}
        assert counter.most == 3  # two instances, and one batch of one
        described = sm.describe_endpoint(EndpointName=endpoint)
        assert described["EndpointConfigName"] == green
        assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 2
        assert described["LastDeploymentConfig"] == deployment
        assert len(_instance_pids(server.process.pid)) == 2
