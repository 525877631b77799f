"""The SageMaker control plane and runtime of ``moorage server``, driven by boto3 only."""

import json
import os
import uuid

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.server import FAST_WAITER, running_server

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROWS = json.dumps([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).encode()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def deploy(sm, model_url: str, *, name: str | None = None, variants=None, wait=True) -> str:
    name = name or unique("ep")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": model_url,
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/any",
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=variants
        or [
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    return name


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_endpoint_lifecycle_with_waiters(sm, runtime, artifacts):
    name = deploy(sm, artifacts["iris"], wait=False)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating"
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointArn"] == f"arn:aws:sagemaker:us-east-1:000000000000:endpoint/{name}"
    [variant] = described["ProductionVariants"]
    assert variant["CurrentInstanceCount"] == 1
    assert variant["DesiredInstanceCount"] == 1
    assert variant["DeployedImages"][0]["SpecifiedImage"] == SKLEARN_IMAGE
    answer = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=ROWS)
    assert json.loads(answer["Body"].read()) == [0, 2]
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    code, message = error_of(runtime.invoke_endpoint, EndpointName=name, Body=ROWS)
    assert code == "ValidationError"
    assert f"Endpoint {name} of account 000000000000 not found." == message


def test_describe_model_and_config_echo_inputs(sm, artifacts):
    name = unique("m")
    arn = sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts["iris"]},
        Tags=[{"Key": "team", "Value": "ads"}],
    )["ModelArn"]
    described = sm.describe_model(ModelName=name)
    assert described["ModelArn"] == arn
    assert described["PrimaryContainer"]["ModelDataUrl"] == artifacts["iris"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ads"}]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "tier", "Value": "gold"}])
    sm.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "tier", "Value": "gold"}]
    sm.delete_model(ModelName=name)
    code, message = error_of(sm.describe_model, ModelName=name)
    assert code == "ValidationException"
    assert message.startswith("Could not find model")


@pytest.mark.parametrize(
    ("operation", "kwargs", "fragment"),
    [
        ("describe_endpoint", {"EndpointName": "a_b"}, "regular expression pattern"),
        ("describe_endpoint", {"EndpointName": "no-such-endpoint"}, "Could not find endpoint"),
        (
            "create_endpoint",
            {"EndpointName": "x", "EndpointConfigName": "no-such-config"},
            "Could not find endpoint configuration",
        ),
        (
            "create_endpoint_config",
            {
                "EndpointConfigName": "c",
                "ProductionVariants": [
                    {
                        "VariantName": "v",
                        "ModelName": "m",
                        "InstanceType": "ml.fake",
                        "InitialInstanceCount": 1,
                    }
                ],
            },
            "enum value set",
        ),
        (
            "create_model",
            {"ModelName": "m", "PrimaryContainer": {"Image": "nginx:latest"}},
            "cannot run here",
        ),
        ("delete_endpoint", {"EndpointName": "x" * 64}, "length less than or equal to 63"),
    ],
)
def test_invalid_input_gets_validation_exception(sm, operation, kwargs, fragment):
    code, message = error_of(getattr(sm, operation), **kwargs)
    assert code == "ValidationException"
    assert fragment in message


def test_creating_an_existing_model_is_refused(sm, artifacts):
    name = unique("dup")
    container = {"Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts["iris"]}
    sm.create_model(ModelName=name, PrimaryContainer=container)
    code, message = error_of(sm.create_model, ModelName=name, PrimaryContainer=container)
    assert code == "ValidationException"
    assert message.startswith("Cannot create already existing model")


def test_unknown_operation(server):
    import urllib3

    answer = urllib3.PoolManager().request(
        "POST",
        server.url + "/",
        body=b"{}",
        headers={"X-Amz-Target": "SageMaker.NoSuchThing", "Content-Type": CONTROL_JSON},
    )
    assert answer.status == 400
    assert json.loads(answer.data)["__type"] == "UnknownOperationException"


CONTROL_JSON = "application/x-amz-json-1.1"


def test_list_models_pages_filters_and_sorts(sm, artifacts):
    prefix = unique("page")
    for i in range(7):
        sm.create_model(
            ModelName=f"{prefix}-{i}",
            PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts["iris"]},
        )
    seen, token = [], None
    while True:
        kwargs = {"NameContains": prefix.upper(), "MaxResults": 3, "SortBy": "Name"}
        kwargs["SortOrder"] = "Ascending"
        if token:
            kwargs["NextToken"] = token
        page = sm.list_models(**kwargs)
        seen += [m["ModelName"] for m in page["Models"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == [f"{prefix}-{i}" for i in range(7)]
    paginated = sm.get_paginator("list_models").paginate(NameContains=prefix)
    assert sum(len(p["Models"]) for p in paginated) == 7


def test_model_fn_failure_fails_the_endpoint_with_its_reason(sm, artifacts):
    name = deploy(sm, artifacts["broken"], wait=False)
    with pytest.raises(Exception, match="Failed"):
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "Failed"
    assert "ValueError: bad weights" in described["FailureReason"]
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST_WAITER)


def test_headers_are_mapped_both_ways(sm, runtime, artifacts):
    name = deploy(sm, artifacts["echo"])
    answer = runtime.invoke_endpoint(
        EndpointName=name,
        ContentType="application/json",
        Accept="application/json",
        CustomAttributes="trace=42",
        InferenceId="inf-1",
        Body=b'{"x": 1}',
    )
    assert answer["CustomAttributes"] == "echo=trace=42"
    assert answer["ContentType"] == "application/json"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    seen = json.loads(answer["Body"].read())
    assert seen["headers"]["x-amzn-sagemaker-inference-id"] == "inf-1"
    assert seen["accept"] == "application/json"
    assert seen["content_type"] == "application/json"


def test_model_errors_carry_the_container_answer(sm, runtime, artifacts):
    name = deploy(sm, artifacts["iris"])
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=name, ContentType="application/xml", Body=b"<x/>")
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    assert "application/xml" in error["OriginalMessage"]
    assert error["LogStreamArn"].startswith(
        f"arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/{name}"
    )


def test_oversize_body_is_a_validation_error(sm, runtime, artifacts):
    name = deploy(sm, artifacts["iris"])
    code, _ = error_of(
        runtime.invoke_endpoint,
        EndpointName=name,
        ContentType="application/json",
        Body=b" " * (6 * 1024 * 1024 + 1),
    )
    assert code == "ValidationError"


def test_metrics_carry_sagemaker_names(server, sm, runtime, artifacts):
    import urllib3

    name = deploy(sm, artifacts["iris"])
    for _ in range(3):
        runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=ROWS)
    text = urllib3.PoolManager().request("GET", server.url + "/metrics").data.decode()
    labels = f'EndpointName="{name}",VariantName="AllTraffic"'
    assert f"Invocations_total{{{labels}}} 3.0" in text
    assert f"ModelLatency_microseconds_count{{{labels}}} 3.0" in text
    assert f"OverheadLatency_microseconds_count{{{labels}}}" in text

    # The instance metrics: what the variant's instance uses of its ml.m5.large (8 GiB).
    usage = {
        family.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels == {"EndpointName": name, "VariantName": "AllTraffic"}
        and family.name.endswith("Utilization_percent")
    }
    assert set(usage) == {
        "CPUUtilization_percent",
        "MemoryUtilization_percent",
        "DiskUtilization_percent",
    }
    # A scikit-learn instance holds tens of MiB: about 1 % of 8 GiB.
    assert 0.1 < usage["MemoryUtilization_percent"] < 10
    assert 0 <= usage["CPUUtilization_percent"] <= 100 * (os.cpu_count() or 1)
    assert 0 < usage["DiskUtilization_percent"] <= 100


def test_demo_endpoint_of_the_main_command(tmp_path):
    with running_server(tmp_path / "data", args=("--demo",)) as server:
        sm, runtime = server.client("sagemaker"), server.client("sagemaker-runtime")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="demo", WaiterConfig=FAST_WAITER)
        answer = runtime.invoke_endpoint(
            EndpointName="demo", ContentType="application/json", Body=b"[[1, 2, 3, 4]]"
        )
        assert json.loads(answer["Body"].read()) == pytest.approx([7.1])
        assert "invoke_endpoint" in server.log_text()


def test_every_answer_carries_a_request_id(sm, runtime, artifacts):
    name = deploy(sm, artifacts["iris"])
    answer = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=ROWS)
    described = sm.describe_endpoint(EndpointName=name)
    ids = {answer["ResponseMetadata"]["RequestId"], described["ResponseMetadata"]["RequestId"]}
    assert len(ids) == 2
    assert all(ids)
