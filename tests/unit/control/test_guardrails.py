import pytest

from moorage.control.guardrails import check_deployment_config
from moorage.errors import ValidationError


def size(kind: str, value: int) -> dict:
    return {"Type": kind, "Value": value}


def routed(kind: str, wait_s: int = 1, **sizes) -> dict:
    routing = {"Type": kind, "WaitIntervalInSeconds": wait_s, **sizes}
    return {"TrafficRoutingConfiguration": routing}


@pytest.mark.parametrize(
    "deployment",
    [
        None,
        {"BlueGreenUpdatePolicy": routed("CANARY", CanarySize=size("INSTANCE_COUNT", 2))},
        {"BlueGreenUpdatePolicy": routed("CANARY", CanarySize=size("CAPACITY_PERCENT", 50))},
        {"BlueGreenUpdatePolicy": routed("LINEAR", LinearStepSize=size("CAPACITY_PERCENT", 10))},
        {"BlueGreenUpdatePolicy": routed("ALL_AT_ONCE", MaximumExecutionTimeoutInSeconds=600)},
        {"RollingUpdatePolicy": {"MaximumBatchSize": size("INSTANCE_COUNT", 1),
                                 "WaitIntervalInSeconds": 5}},
        {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "Invocation5XXErrors > 0"}]}},
    ],
)  # fmt: skip
def test_deployment_configs_within_the_guardrails_pass(deployment):
    check_deployment_config(deployment, {"AllTraffic": 4})


@pytest.mark.parametrize(
    ("deployment", "says"),
    [
        ({"BlueGreenUpdatePolicy": routed("CANARY", CanarySize=size("INSTANCE_COUNT", 3))},
         "CanarySize is 3 of the 4 instances (75 %) of variant AllTraffic"),
        ({"BlueGreenUpdatePolicy": routed("CANARY")}, "needs CanarySize"),
        ({"BlueGreenUpdatePolicy": routed("LINEAR")}, "needs LinearStepSize"),
        ({"BlueGreenUpdatePolicy": routed("LINEAR", LinearStepSize=size("CAPACITY_PERCENT", 5))},
         "between 10 % and 50 %"),
        ({"RollingUpdatePolicy": {"MaximumBatchSize": size("INSTANCE_COUNT", 3),
                                  "WaitIntervalInSeconds": 5}}, "between 5 % and 50 %"),
        ({"BlueGreenUpdatePolicy": {**routed("ALL_AT_ONCE", 400),
                                    "TerminationWaitInSeconds": 200,
                                    "MaximumExecutionTimeoutInSeconds": 600}},
         "summed waiting time, 600 s"),
        ({"RollingUpdatePolicy": {"MaximumBatchSize": size("INSTANCE_COUNT", 1),
                                  "WaitIntervalInSeconds": 200,
                                  "MaximumExecutionTimeoutInSeconds": 700}},
         "summed waiting time, 800 s"),
    ],
)  # fmt: skip
def test_deployment_configs_past_the_guardrails_are_refused(deployment, says):
    with pytest.raises(ValidationError) as caught:
        check_deployment_config(deployment, {"AllTraffic": 4})
    assert says in str(caught.value)


def test_serverless_endpoints_skip_the_sizes_but_not_the_alarms():
    canary = {"BlueGreenUpdatePolicy": routed("CANARY", CanarySize=size("INSTANCE_COUNT", 9))}
    check_deployment_config(canary, {})
    unreadable = {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "my-alarm"}]}}
    with pytest.raises(ValidationError, match="Cannot evaluate alarm 'my-alarm'"):
        check_deployment_config(unreadable, {})
