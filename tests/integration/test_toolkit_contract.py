"""What user code written for SageMaker's inference toolkits sees from moorage, through boto3.

Each case pins a place where moorage once answered differently from the toolkit
(sagemaker-inference-toolkit's Transformer, spec/TOOLKIT.md §5-6).
"""

import json
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.fixtures.builders import pack
from tests.integration.server import FAST_WAITER
from tests.integration.test_server_fleet import create_config, variant

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"

# Only model_fn: decoding, predict and encoding are the defaults.
DEFAULTS = """
import numpy as np


class Doubler:
    def predict(self, data):
        return np.asarray(data) * 2


def model_fn(model_dir):
    return Doubler()
"""

# input_fn raises what the body names, as user code does.
RAISES = """
from sagemaker_inference import errors


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    if body == b"value":
        raise ValueError("boom")
    if body == b"unsupported":
        raise errors.UnsupportedFormatError("application/x-mine")
    if body == b"toolkit":
        raise errors.GenericInferenceToolkitError(422, "bad rows")
    return body


def predict_fn(data, model):
    return data
"""


def _archive(root: Path, name: str, script: str) -> str:
    folder = root / name
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(script)
    return f"file://{pack(folder, root / f'{name}.tar.gz')}"


def _deploy(sm, model_url: str, environment: dict[str, str] | None = None) -> str:
    name = f"toolkit-{uuid.uuid4().hex[:8]}"
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": model_url,
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", **(environment or {})},
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/any",
    )
    # Not waited for here: the module's endpoints start side by side.
    sm.create_endpoint(
        EndpointName=name, EndpointConfigName=create_config(sm, variant("AllTraffic", name))
    )
    return name


@pytest.fixture(scope="module")
def endpoints(sm, tmp_path_factory):
    root = tmp_path_factory.mktemp("toolkit")
    defaults = _archive(root, "defaults", DEFAULTS)
    names = {
        "defaults": _deploy(sm, defaults),
        "raises": _deploy(sm, _archive(root, "raises", RAISES)),
        "http_errors": _deploy(sm, defaults, {"MOORAGE_HTTP_CLIENT_ERRORS": "true"}),
    }
    waiter = sm.get_waiter("endpoint_in_service")
    for name in names.values():
        waiter.wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    return names


def model_error(runtime, endpoint: str, body: bytes, **kwargs) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=body, **kwargs)
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    return error["OriginalStatusCode"], error["OriginalMessage"]


def test_unsupported_content_type_answers_500_with_the_toolkit_message(runtime, endpoints):
    status, message = model_error(
        runtime, endpoints["defaults"], b"\x00", ContentType="application/octet-stream"
    )
    assert status == 500
    assert message.startswith(
        "Content type application/octet-stream is not supported by this framework."
    )


def test_unsupported_accept_answers_500_with_the_toolkit_message(runtime, endpoints):
    status, message = model_error(
        runtime, endpoints["defaults"], b"[1]", ContentType="application/json", Accept="text/html"
    )
    assert status == 500
    assert message.startswith("Content type text/html is not supported by this framework.")


def test_text_plain_has_no_default_decoder_or_encoder(runtime, endpoints):
    status, message = model_error(runtime, endpoints["defaults"], b"1", ContentType="text/plain")
    assert status == 500
    assert message.startswith("Content type text/plain is not supported by this framework.")
    status, message = model_error(
        runtime, endpoints["defaults"], b"[1]", ContentType="application/json", Accept="text/plain"
    )
    assert status == 500
    assert message.startswith("Content type text/plain is not supported by this framework.")


def test_malformed_json_answers_500(runtime, endpoints):
    status, _ = model_error(runtime, endpoints["defaults"], b"[1,", ContentType="application/json")
    assert status == 500
    answer = runtime.invoke_endpoint(
        EndpointName=endpoints["defaults"], ContentType="application/json", Body=b"[1]"
    )
    assert json.loads(answer["Body"].read()) == [2]


def test_user_exception_body_is_its_message_then_the_traceback(runtime, endpoints):
    status, message = model_error(
        runtime, endpoints["raises"], b"value", ContentType="application/octet-stream"
    )
    assert status == 500
    assert message.startswith("boom\nTraceback (most recent call last):")
    assert message.rstrip().endswith("ValueError: boom")
    status, message = model_error(
        runtime, endpoints["raises"], b"unsupported", ContentType="application/octet-stream"
    )
    assert status == 500
    assert message.startswith("Content type application/x-mine is not supported by this framework.")
    status, message = model_error(
        runtime, endpoints["raises"], b"toolkit", ContentType="application/octet-stream"
    )
    assert (status, message.split("\n", 1)[0]) == (422, "bad rows")


def test_client_error_statuses_are_an_opt_in(runtime, endpoints):
    cases = [
        ({"ContentType": "application/octet-stream"}, b"\x00", 415),
        ({"ContentType": "application/json", "Accept": "text/html"}, b"[1]", 406),
        ({"ContentType": "application/json"}, b"[1,", 400),
    ]
    for kwargs, body, status in cases:
        assert model_error(runtime, endpoints["http_errors"], body, **kwargs)[0] == status
        assert model_error(runtime, endpoints["defaults"], body, **kwargs)[0] == 500
