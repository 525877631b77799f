"""Where moorage once answered differently from SageMaker's public contract, driven by boto3."""

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.integration.server import FAST_WAITER
from tests.integration.test_server_fleet import (
    create_config,
    create_endpoint,
    create_model,
    variant,
)

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(call, **kwargs) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    answer = caught.value.response
    return (
        answer["Error"]["Code"],
        answer["Error"]["Message"],
        answer["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_describe_model_says_network_isolation_is_off_by_default(sm, artifacts):
    name = create_model(sm, artifacts["iris"])
    assert sm.describe_model(ModelName=name)["EnableNetworkIsolation"] is False


def test_variant_without_model_name_is_a_validation_error(sm):
    # ModelName is optional in botocore's model (inference-component endpoints), so boto3 sends
    # this as is; it used to fail inside the server with InternalFailure (500).
    code, message, status = error_of(
        sm.create_endpoint_config,
        EndpointConfigName=unique("c"),
        ProductionVariants=[
            {"VariantName": "v", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    assert (code, status) == ("ValidationException", 400)
    assert "ModelName" in message


def test_list_time_filter_out_of_range_is_a_validation_error(server):
    sm = server.client("sagemaker")

    def far_future(request, **_):
        # botocore cannot serialize such a time itself; a hand-made client can send it.
        request.data = json.dumps({"CreationTimeAfter": 1e30}).encode()

    sm.meta.events.register("before-sign.sagemaker.ListModels", far_future)
    code, _, status = error_of(sm.list_models)
    assert (code, status) == ("ValidationException", 400)


def test_tags_of_another_regions_resource_are_refused(sm, artifacts):
    name = create_model(sm, artifacts["iris"])
    elsewhere = f"arn:aws:sagemaker:eu-west-1:000000000000:model/{name}"
    for call, kwargs in [
        (sm.add_tags, {"Tags": [{"Key": "team", "Value": "ads"}]}),
        (sm.list_tags, {}),
        (sm.delete_tags, {"TagKeys": ["team"]}),
    ]:
        code, message, status = error_of(call, ResourceArn=elsewhere, **kwargs)
        assert (code, status) == ("ValidationException", 400)
        assert message.startswith("Could not find")


def test_resource_arn_pattern_is_quoted_as_sagemaker_quotes_it(sm):
    code, message, _ = error_of(sm.list_tags, ResourceArn="not-an-arn")
    assert code == "ValidationException"
    assert message == (
        "1 validation error detected: Value 'not-an-arn' at 'resourceArn' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "arn:aws[a-z-]*:sagemaker:[a-z0-9-]*:[0-9]{12}:.+"
    )


def test_deployed_images_outlive_the_config_and_model(sm, artifacts):
    # SageMaker lets you delete a running endpoint's config and model; DescribeEndpoint still
    # shows what the endpoint deployed.
    model = create_model(sm, artifacts["iris"])
    config = create_config(sm, variant("AllTraffic", model))
    name = create_endpoint(sm, config)
    try:
        sm.delete_endpoint_config(EndpointConfigName=config)
        sm.delete_model(ModelName=model)
        [described] = sm.describe_endpoint(EndpointName=name)["ProductionVariants"]
        [image] = described["DeployedImages"]
        assert image["SpecifiedImage"] == SKLEARN_IMAGE
        assert image["ResolvedImage"] == SKLEARN_IMAGE
    finally:
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST_WAITER)


def test_describe_endpoint_shows_the_configs_metrics_and_cross_region_settings(sm, artifacts):
    model = create_model(sm, artifacts["iris"])
    metrics = {"EnableEnhancedMetrics": True, "MetricPublishFrequencyInSeconds": 30}
    cross_region = {
        "MaxInvocationsPerSecondPerInstance": 50,
        "MaxCrossRegionPercentPerEndpoint": 20,
    }
    config = unique("cfg")
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[variant("AllTraffic", model)],
        MetricsConfig=metrics,
        CrossRegionTrafficConfig=cross_region,
    )
    name = create_endpoint(sm, config)
    try:
        described = sm.describe_endpoint(EndpointName=name)
        assert described["MetricsConfig"] == metrics
        assert described["CrossRegionTrafficConfig"] == cross_region
        assert sm.describe_endpoint_config(EndpointConfigName=config)["MetricsConfig"] == metrics
    finally:
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
