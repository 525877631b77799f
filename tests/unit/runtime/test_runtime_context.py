from pathlib import Path

import pytest

import moorage
from moorage.runtime.context import Context


@pytest.fixture
def context():
    context = Context("churn", Path("/opt/ml/model"), handler="inference.py")
    context.request_processor[0]._begin(
        {"content-type": "text/csv", "x-amzn-sagemaker-inference-id": "abc-123"}
    )
    return context


def test_system_properties_describe_the_worker():
    context = Context("churn", Path("/opt/ml/model"), handler="inference.py", gpu_id=1)
    assert context.system_properties == {
        "model_dir": "/opt/ml/model",
        "gpu_id": 1,
        "batch_size": 1,
        "server_name": "moorage",
        "server_version": moorage.__version__,
    }
    assert context.model_name == "churn"
    assert context.manifest["model"]["handler"] == "inference.py"


def test_gpu_id_is_none_without_a_gpu():
    context = Context("m", Path("/m"), handler="inference.py")
    assert context.system_properties["gpu_id"] is None


def test_request_headers_are_found_in_any_case(context):
    assert context.get_request_header(0, "Content-Type") == "text/csv"
    assert context.get_request_header(0, "missing") is None
    properties = context.request_processor[0].get_request_properties()
    assert properties["CONTENT-TYPE"] == "text/csv"
    assert properties.get("Content-Type") == "text/csv"
    assert "content-type" in properties
    assert dict(context.get_all_request_header(0)) == {
        "content-type": "text/csv",
        "x-amzn-sagemaker-inference-id": "abc-123",
    }


def test_request_id_is_the_inference_id_when_sent(context):
    assert context.get_request_id() == "abc-123"


def test_request_id_is_generated_once_per_request_without_an_inference_id(context):
    processor = context.request_processor[0]
    processor._begin({})
    first = context.get_request_id(0)
    assert len(first) == 32
    assert context.get_request_id(0) == first
    processor._begin({})
    assert context.get_request_id(0) != first


def test_response_headers_and_content_type_are_recorded(context):
    context.set_response_header(0, "X-Amzn-SageMaker-Custom-Attributes", "a=1")
    context.set_response_content_type(0, "text/plain")
    assert context.get_response_content_type(0) == "text/plain"
    assert context.get_response_headers(0) == {
        "x-amzn-sagemaker-custom-attributes": "a=1",
        "content-type": "text/plain",
    }
    assert context.request_processor[0]._take_response_headers() == (
        "text/plain",
        [("x-amzn-sagemaker-custom-attributes", "a=1")],
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("Content-Length", "3", "set by the server"),
        ("X-Evil", "a\r\nSet-Cookie: x=1", "not a valid header line"),
        ("", "x", "not a valid header line"),
    ],
)
def test_response_headers_that_would_corrupt_the_response_are_refused(
    context, name, value, message
):
    with pytest.raises(ValueError, match=message):
        context.set_response_header(0, name, value)


def test_response_status_and_its_mms_alias(context):
    assert context.get_response_status(0) == (200, "")
    context.set_response_status(404, "Nope")
    assert context.get_response_status(0) == (404, "Nope")
    context.set_http_response_status(code=503)
    assert context.get_http_response_status(0) == (503, "")


@pytest.mark.parametrize("code", [99, 600, "404", 404.0])
def test_response_status_must_be_an_http_status(context, code):
    with pytest.raises(ValueError, match="from 100 to 599"):
        context.set_response_status(code)


def test_a_new_request_starts_from_a_clean_response(context):
    context.set_response_status(429)
    context.set_response_header(0, "X-Amzn-SageMaker-Custom-Attributes", "a=1")
    context.request_processor[0]._begin({})
    assert context.get_response_status(0) == (200, "")
    assert context.get_response_content_type(0) is None
    assert context.get_response_headers(0) == {}


def test_only_index_zero_exists(context):
    with pytest.raises(IndexError):
        context.get_request_header(1, "content-type")
