"""Serverless endpoints: one instance at most, stopped when idle and started again on demand,
with SageMaker's limits (MaxConcurrency, 4 MB bodies)."""

import json
import os
import threading
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import wait_until
from tests.integration.server import FAST_WAITER, running_server
from tests.integration.test_server_fleet import create_config, create_model, variant
from tests.integration.test_server_lifecycle import unique

IDLE_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    with running_server(data_dir, env={"MOORAGE_SERVERLESS_IDLE": str(IDLE_S)}) as running:
        yield running


@pytest.fixture(scope="module")
def slow_model(sm, tmp_path_factory) -> str:
    """Answers its worker's pid after sleeping as long as the body says."""
    root = tmp_path_factory.mktemp("slow")
    return create_model(sm, f"file://{pack(model_dir('slow', root / 'slow'), root / 's.tar.gz')}")


def serverless(model: str, *, max_concurrency: int = 5, **config) -> dict:
    return {
        "VariantName": "AllTraffic",
        "ModelName": model,
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": max_concurrency, **config},
    }


def deploy(sm, *variants) -> str:
    name = unique("sl")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=create_config(sm, *variants))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    return name


def call(runtime, endpoint: str, sleep: float = 0.0, echo: str = "") -> dict:
    body = json.dumps({"sleep": sleep, "echo": echo}).encode()
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=body
    )
    return json.loads(answer["Body"].read())


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def error_of(call_it) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        call_it()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_an_idle_serverless_endpoint_scales_to_zero_and_starts_again_on_demand(
    sm, runtime, server, slow_model
):
    endpoint = deploy(sm, serverless(slow_model))
    summary = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"][0]
    expected = {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert summary["CurrentServerlessConfig"] == expected
    assert summary["DesiredServerlessConfig"] == expected
    assert "CurrentInstanceCount" not in summary

    first = call(runtime, endpoint)["pid"]
    wait_until(lambda: not is_alive(first), timeout=IDLE_S + 15)
    second = call(runtime, endpoint, echo="after a cold start")
    assert second["echo"] == "after a cold start"
    assert second["pid"] != first
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as scraped:
        text = scraped.read().decode()
    setups = [
        line for line in text.splitlines()
        if line.startswith("ModelSetupTime_microseconds_count") and endpoint in line
    ]  # fmt: skip
    assert setups
    assert float(setups[0].split()[-1]) >= 1
    # Of the instance metrics, serverless variants report memory only (of MemorySizeInMB).
    usage = [line for line in text.splitlines() if "Utilization" in line and endpoint in line]
    assert [line.split("{")[0] for line in usage] == ["MemoryUtilization_percent"]


def test_provisioned_concurrency_keeps_an_instance_warm(sm, runtime, slow_model):
    endpoint = deploy(sm, serverless(slow_model, ProvisionedConcurrency=1))
    pid = call(runtime, endpoint)["pid"]
    threading.Event().wait(IDLE_S * 3)
    assert is_alive(pid)
    assert call(runtime, endpoint)["pid"] == pid


def test_requests_beyond_max_concurrency_are_throttled(sm, runtime, slow_model):
    endpoint = deploy(sm, serverless(slow_model, max_concurrency=2))
    answers = []
    callers = [
        threading.Thread(target=lambda: answers.append(call(runtime, endpoint, sleep=2.0)))
        for _ in range(2)
    ]
    for caller in callers:
        caller.start()
    threading.Event().wait(0.5)
    assert error_of(lambda: call(runtime, endpoint)) == (400, "ThrottlingException")
    for caller in callers:
        caller.join()
    assert len(answers) == 2
    assert "pid" in call(runtime, endpoint)


def test_bodies_over_4_mb_are_refused(sm, runtime, slow_model):
    endpoint = deploy(sm, serverless(slow_model))
    assert call(runtime, endpoint, echo="x" * 3_000_000)["echo"] == "x" * 3_000_000
    too_big = b" " * (4 * 1024 * 1024 + 1)
    status = error_of(
        lambda: runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Body=too_big
        )
    )
    assert status == (400, "ValidationError")


def test_max_concurrency_changes_live_with_update_weights_and_capacities(sm, runtime, slow_model):
    endpoint = deploy(sm, serverless(slow_model, max_concurrency=3))
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "ServerlessUpdateConfig": {"MaxConcurrency": 1}}
        ],
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    summary = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"][0]
    assert summary["DesiredServerlessConfig"]["MaxConcurrency"] == 1
    assert summary["CurrentServerlessConfig"]["MaxConcurrency"] == 1
    busy = threading.Thread(target=lambda: call(runtime, endpoint, sleep=1.5))
    busy.start()
    threading.Event().wait(0.5)
    assert error_of(lambda: call(runtime, endpoint)) == (400, "ThrottlingException")
    busy.join()

    refused = error_of(
        lambda: sm.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}],
        )
    )
    assert refused == (400, "ValidationException")


def test_a_serverless_endpoint_may_become_instance_based_but_not_the_reverse(
    sm, runtime, slow_model
):
    endpoint = deploy(sm, serverless(slow_model))
    sm.update_endpoint(
        EndpointName=endpoint, EndpointConfigName=create_config(sm, variant("A", slow_model))
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert "FailureReason" not in described
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    assert "pid" in call(runtime, endpoint)

    back = create_config(sm, serverless(slow_model))
    with pytest.raises(ClientError, match="to serverless"):
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=back)


@pytest.mark.parametrize(
    ("variants", "says"),
    [
        (
            lambda m: [serverless(m), {**serverless(m), "VariantName": "B"}],
            "exactly one production variant",
        ),
        (
            lambda m: [{**serverless(m), "InstanceType": "ml.m5.large"}],
            "both ServerlessConfig and InstanceType",
        ),
        (lambda m: [serverless(m, ProvisionedConcurrency=6)], "must not exceed MaxConcurrency"),
        (
            lambda m: [
                {**serverless(m), "ServerlessConfig": {"MemorySizeInMB": 1500, "MaxConcurrency": 1}}
            ],
            "MemorySizeInMB must be one of",
        ),
    ],
    ids=["two-variants", "also-instances", "provisioned-over-max", "memory-size"],
)
def test_serverless_configs_sagemaker_refuses_are_refused(sm, slow_model, variants, says):
    with pytest.raises(ClientError, match=says) as caught:
        sm.create_endpoint_config(
            EndpointConfigName=unique("cfg"), ProductionVariants=variants(slow_model)
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_a_multi_model_serverless_variant_is_refused(sm, tmp_path):
    name = unique("mme")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"ModelDataUrl": f"file://{tmp_path}/", "Mode": "MultiModel"},
    )
    with pytest.raises(ClientError, match="do not support multi-model"):
        sm.create_endpoint_config(
            EndpointConfigName=unique("cfg"), ProductionVariants=[serverless(name)]
        )


def test_a_serverless_model_that_cannot_load_fails_the_endpoint(sm, artifacts):
    name = unique("sl")
    config = create_config(sm, serverless(create_model(sm, artifacts["broken"])))
    sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
    with pytest.raises(Exception, match="Failed"):
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    assert "model_fn" in sm.describe_endpoint(EndpointName=name)["FailureReason"]
