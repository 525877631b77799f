"""Bad and unusual input, through boto3: a clear error in SageMaker's shape, never a 5xx, a hang
or a dead server. Each case here once broke that rule."""

import pytest

from tests.integration.test_api_contract import error_of, unique
from tests.integration.test_server_async_inference import deploy_async
from tests.integration.test_server_fleet import (
    create_config,
    create_endpoint,
    create_model,
    variant,
)

TOO_MANY = 10**12  # once made the server start as many instances, and hang or die doing so


@pytest.fixture(scope="module")
def loose(server):
    """Clients that send what botocore would refuse, as other SDKs and hand-made calls can."""
    return {
        service: server.client(service, parameter_validation=False)
        for service in ("sagemaker", "sagemaker-runtime")
    }


@pytest.fixture(scope="module")
def model(sm, artifacts):
    return create_model(sm, artifacts["echo"])


@pytest.fixture(scope="module")
def endpoint(sm, model):
    return create_endpoint(sm, create_config(sm, variant("AllTraffic", model)))


@pytest.fixture(scope="module")
def async_endpoint(sm, model, tmp_path_factory):
    return deploy_async(sm, model, f"file://{tmp_path_factory.mktemp('async')}")


def transform_job(model: str, count: int, folder) -> dict:
    return {
        "TransformJobName": unique("job"),
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"file://{folder}"}}
        },
        "TransformOutput": {"S3OutputPath": f"file://{folder}/out"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": count},
    }


@pytest.mark.parametrize("call", ["create_endpoint_config", "create_transform_job"])
def test_instance_counts_past_the_limit_are_refused(sm, model, tmp_path, call):
    kwargs = {
        "create_endpoint_config": {
            "EndpointConfigName": unique("cfg"),
            "ProductionVariants": [variant("AllTraffic", model, count=TOO_MANY)],
        },
        "create_transform_job": transform_job(model, TOO_MANY, tmp_path),
    }[call]
    code, message, status = error_of(getattr(sm, call), **kwargs)
    assert (code, status) == ("ResourceLimitExceeded", 400)
    assert "at most 100 instances" in message
    sm.list_models()  # still serving


def test_desired_instance_count_past_the_limit_is_refused(sm, endpoint):
    code, _, status = error_of(
        sm.update_endpoint_weights_and_capacities,
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "DesiredInstanceCount": TOO_MANY}
        ],
    )
    assert (code, status) == ("ResourceLimitExceeded", 400)
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"


def test_list_tags_takes_any_max_results(sm, model):
    # ListTags.MaxResults has a minimum (50) and no maximum; 2**63 once overflowed SQLite.
    model_arn = sm.describe_model(ModelName=model)["ModelArn"]
    sm.add_tags(ResourceArn=model_arn, Tags=[{"Key": "team", "Value": "ads"}])
    assert sm.list_tags(ResourceArn=model_arn, MaxResults=2**63)["Tags"] == [
        {"Key": "team", "Value": "ads"}
    ]


@pytest.mark.parametrize("depth", [600, 5000], ids=["validation-recursed", "parser-recursed"])
def test_deeply_nested_body_is_a_serialization_error(server, depth):
    sm = server.client("sagemaker")
    nested = b"[" * depth + b"]" * depth

    def deep(request, **_):
        # botocore cannot serialize such a body itself; a hand-made client can send it.
        request.data = b'{"ModelName": "m", "PrimaryContainer": {"Environment": {"A": %s}}}' % (
            nested
        )

    sm.meta.events.register("before-sign.sagemaker.CreateModel", deep)
    code, _, status = error_of(sm.create_model, ModelName="m", PrimaryContainer={})
    assert (code, status) == ("SerializationException", 400)


def test_memory_budget_of_non_ascii_digits_is_a_validation_error(sm, artifacts):
    code, message, status = error_of(
        sm.create_model,
        ModelName=unique("m"),
        PrimaryContainer={
            "ModelDataUrl": artifacts["echo"],
            "Environment": {"MOORAGE_MEMORY_BUDGET_MB": "\u00b2"},  # '²'.isdigit() is True
        },
    )
    assert (code, status) == ("ValidationException", 400)
    assert "MOORAGE_MEMORY_BUDGET_MB" in message


@pytest.mark.parametrize(
    ("member", "value"),
    [
        # int() refuses over 4300 digits, and str.isdigit() let them through to it.
        ("RequestTTLSeconds", "0" * 5000 + "60"),
        ("InvocationTimeoutSeconds", "9" * 5000),
        ("InputLocation", "s3://bucket/" + "k" * 1100),  # the model's max is 1024
    ],
)
def test_async_invocation_headers_past_their_shape_are_validation_errors(
    loose, async_endpoint, member, value
):
    body = {} if member == "InputLocation" else {"Body": b"{}"}
    code, message, status = error_of(
        loose["sagemaker-runtime"].invoke_endpoint_async,
        EndpointName=async_endpoint,
        **body,
        **{member: value},
    )
    assert (code, status) == ("ValidationError", 400)
    assert member in message


@pytest.mark.parametrize("operation", ["invoke_endpoint", "invoke_endpoint_with_response_stream"])
@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("InferenceId", "caf\u00e9"),  # \p{Print} is ASCII only in Java, as in the model
        ("ContentType", "application/" + "x" * 1024),  # the model's max is 1024
        ("Accept", "application/" + "x" * 1024),
    ],
)
def test_invocation_headers_past_their_shape_are_validation_errors(
    runtime, endpoint, operation, member, value
):
    kwargs = {"ContentType": "application/json", member: value}
    code, _, status = error_of(
        getattr(runtime, operation), EndpointName=endpoint, Body=b"{}", **kwargs
    )
    assert (code, status) == ("ValidationError", 400)
