"""InvokeEndpointWithResponseStream through boto3: the answer as event-stream PayloadParts."""

import json

import pytest
from botocore.exceptions import ClientError

from tests.integration.test_server_direct import deploy, multi_model_endpoint  # noqa: F401


@pytest.fixture(scope="module")
def identity(sm, tmp_path_factory) -> str:
    return deploy(sm, "identity", tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="module")
def echo_context(sm, tmp_path_factory) -> str:
    return deploy(sm, "echo_context", tmp_path_factory.mktemp("echo"))


@pytest.fixture(scope="module")
def errors(sm, tmp_path_factory) -> str:
    return deploy(sm, "errors", tmp_path_factory.mktemp("errors"))


def parts(answer) -> list[bytes]:
    events = list(answer["Body"])
    assert all(list(event) == ["PayloadPart"] for event in events), events
    return [event["PayloadPart"]["Bytes"] for event in events]


def test_the_answer_arrives_as_payload_parts(runtime, identity):
    body = json.dumps({"numbers": list(range(20))}).encode()
    answer = runtime.invoke_endpoint_with_response_stream(
        EndpointName=identity, Body=body, ContentType="application/json"
    )
    assert b"".join(parts(answer)) == body
    assert answer["ContentType"] == "application/json"
    assert answer["InvokedProductionVariant"] == "A"
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_large_answer_is_split_into_parts_that_join_up(runtime, identity):
    body = json.dumps({"pad": "x" * (3 * 1024 * 1024)}).encode()
    answer = runtime.invoke_endpoint_with_response_stream(
        EndpointName=identity, Body=body, ContentType="application/json"
    )
    received = parts(answer)
    assert len(received) == 4
    assert b"".join(received) == body


def test_accept_content_type_and_custom_attributes_reach_the_model(runtime, echo_context):
    answer = runtime.invoke_endpoint_with_response_stream(
        EndpointName=echo_context,
        Body=b"{}",
        ContentType="application/json",
        Accept="text/csv",
        CustomAttributes="trace=7",
    )
    seen = json.loads(b"".join(parts(answer)))
    assert (seen["content_type"], seen["accept"]) == ("application/json", "text/csv")
    assert "x-amzn-sagemaker-accept" not in {name.lower() for name in seen["headers"]}
    assert answer["CustomAttributes"] == "echo=trace=7"
    assert answer["ContentType"] == "application/json"


def test_a_failing_model_is_a_model_error_before_any_part(runtime, errors):
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint_with_response_stream(
            EndpointName=errors, Body=b'{"action": "raise"}', ContentType="application/json"
        )
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 500
    assert "boom" in error["OriginalMessage"]


def test_unknown_endpoints_and_multi_model_endpoints_are_validation_errors(
    runtime,
    multi_model_endpoint,  # noqa: F811
):
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint_with_response_stream(EndpointName="nowhere", Body=b"{}")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "Endpoint nowhere of account" in caught.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint_with_response_stream(EndpointName=multi_model_endpoint, Body=b"{}")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "multi-model" in caught.value.response["Error"]["Message"]
