"""Data capture (DataCaptureConfig) of ``moorage server``, driven by boto3 only: files in
SageMaker's layout and line format, in a local folder or on S3 (moto's server)."""

import base64
import calendar
import json
import re
import time
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import wait_until
from tests.integration.server import FAST_WAITER, running_server
from tests.integration.test_server_fleet import (
    create_config,
    create_endpoint,
    create_model,
    variant,
)
from tests.integration.test_server_lifecycle import unique

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# <endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl
FILE_KEY = re.compile(
    r"(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/"
    r"\d{2}-\d{2}-\d{3}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl"
)
INFERENCE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
TEXT_TYPES = {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}


def capture_config(destination: str, *, percentage=100, modes=("Input", "Output"), **more):
    return {
        "InitialSamplingPercentage": percentage,
        "DestinationS3Uri": destination,
        "CaptureOptions": [{"CaptureMode": mode} for mode in modes],
        **more,
    }


def capturing_config(sm, model: str, capture: dict) -> str:
    name = unique("cfg")
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[variant("AllTraffic", model)],
        DataCaptureConfig=capture,
    )
    return name


def deploy(sm, model_url: str, capture: dict) -> str:
    return create_endpoint(sm, capturing_config(sm, create_model(sm, model_url), capture))


def wait_in_service(sm, name: str) -> None:
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)


def captured(folder) -> dict[str, list[dict]]:
    """Lines of every capture file under ``folder``, by the file's path relative to it."""
    return {
        path.relative_to(folder).as_posix(): [json.loads(t) for t in path.read_text().splitlines()]
        for path in sorted(folder.rglob("*.jsonl"))
    }


def wait_for_lines(read, count: int) -> list[dict]:
    def enough():
        lines = [line for file in read().values() for line in file]
        return lines if len(lines) >= count else None

    return wait_until(enough, timeout=30)


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        name: f"file://{pack(model_dir(name, root / name), root / f'{name}.tar.gz')}"
        for name in ("echo_context", "identity", "errors")
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_endpoint):
    env = {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint, "MOORAGE_CAPTURE_FLUSH_INTERVAL": "0.2"}
    with running_server(tmp_path_factory.mktemp("data"), env=env) as running:
        yield running


def test_capture_to_a_local_folder_as_sagemaker_writes_it(sm, runtime, models, tmp_path):
    capture = capture_config(
        f"file://{tmp_path}/capture",
        CaptureContentTypeHeader=TEXT_TYPES,
        KmsKeyId="alias/capture",
    )
    name = deploy(sm, models["echo_context"], capture)
    assert sm.describe_endpoint(EndpointName=name)["DataCaptureConfig"] == {
        "EnableCapture": True,
        "CaptureStatus": "Started",
        "CurrentSamplingPercentage": 100,
        "DestinationS3Uri": f"file://{tmp_path}/capture",
        "KmsKeyId": "alias/capture",
    }
    # Over 64 KiB: read into shared memory, where the worker writes its answer.
    rows = ("5.1,3.5,1.4,0.2\n" * 5000).encode()
    binary = bytes(range(256))
    sent = [
        {"ContentType": "application/json", "Body": b'{"x": [1, 2]}', "InferenceId": "order-7"},
        {"ContentType": "text/csv; charset=utf-8", "Body": rows},
        {"ContentType": "application/x-npy", "Body": binary},
    ]
    answers = [runtime.invoke_endpoint(EndpointName=name, **kwargs) for kwargs in sent]
    outputs = [answer["Body"].read().decode() for answer in answers]

    lines = wait_for_lines(lambda: captured(tmp_path / "capture"), 3)
    files = captured(tmp_path / "capture")
    for path in files:
        match = FILE_KEY.fullmatch(path)
        assert match is not None, path
        assert (match["endpoint"], match["variant"]) == (name, "AllTraffic")
    assert [line["captureData"]["endpointInput"] for line in lines] == [
        {
            "observedContentType": "application/json",
            "mode": "INPUT",
            "data": '{"x": [1, 2]}',
            "encoding": "JSON",
        },
        {
            "observedContentType": "text/csv; charset=utf-8",
            "mode": "INPUT",
            "data": rows.decode(),
            "encoding": "CSV",
        },
        {
            "observedContentType": "application/x-npy",
            "mode": "INPUT",
            "data": base64.b64encode(binary).decode(),
            "encoding": "BASE64",
        },
    ]
    assert [line["captureData"]["endpointOutput"] for line in lines] == [
        {"observedContentType": "application/json", "mode": "OUTPUT", "data": output,
         "encoding": "JSON"}
        for output in outputs
    ]  # fmt: skip
    assert [line["eventMetadata"].get("inferenceId") for line in lines] == ["order-7", None, None]
    for line in lines:
        assert line["eventVersion"] == "0"
        assert uuid.UUID(line["eventMetadata"]["eventId"]).version == 4
        stamp = line["eventMetadata"]["inferenceTime"]
        assert INFERENCE_TIME.fullmatch(stamp)
        when = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
        assert abs(when - time.time()) < 120


def test_input_mode_captures_successful_requests_only(sm, runtime, models, tmp_path):
    name = deploy(
        sm,
        models["errors"],
        capture_config(str(tmp_path), modes=("Input",), CaptureContentTypeHeader=TEXT_TYPES),
    )
    with pytest.raises(ClientError, match="ModelError"):
        runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=b'{"action": "raise"}'
        )
    answer = runtime.invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body=b'{"action": "bytearray"}'
    )
    assert answer["Body"].read() == b"raw"
    [line] = wait_for_lines(lambda: captured(tmp_path), 1)
    assert line["captureData"] == {
        "endpointInput": {
            "observedContentType": "application/json",
            "mode": "INPUT",
            "data": '{"action": "bytearray"}',
            "encoding": "JSON",
        }
    }


def test_capture_to_s3(sm, runtime, models, s3_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **{
        "region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local",
    })  # fmt: skip
    bucket = f"capture-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    # No CaptureContentTypeHeader: SageMaker then writes every body as base64.
    name = deploy(sm, models["identity"], capture_config(f"s3://{bucket}/monitoring/"))
    runtime.invoke_endpoint(
        EndpointName=name,
        ContentType="application/json",
        Accept="application/octet-stream",
        Body=b"[1, 2]",
        InferenceId="s3-1",
    )

    def read():
        listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {
            item["Key"]: [
                json.loads(text)
                for text in s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].iter_lines()
            ]
            for item in listing
        }

    [line] = wait_for_lines(read, 1)
    [key] = read()
    assert key.startswith(f"monitoring/{name}/AllTraffic/")
    assert FILE_KEY.fullmatch(key.removeprefix("monitoring/"))
    encoded = base64.b64encode(b"[1, 2]").decode()
    assert line["captureData"] == {
        "endpointInput": {
            "observedContentType": "application/json",
            "mode": "INPUT",
            "data": encoded,
            "encoding": "BASE64",
        },
        "endpointOutput": {
            "observedContentType": "application/octet-stream",
            "mode": "OUTPUT",
            "data": encoded,
            "encoding": "BASE64",
        },
    }
    assert line["eventMetadata"]["inferenceId"] == "s3-1"


def test_update_keeps_capture_unless_excluded(sm, runtime, models, tmp_path):
    model = create_model(sm, models["identity"])
    capturing = capturing_config(sm, model, capture_config(str(tmp_path / "first")))
    name = create_endpoint(sm, capturing)
    plain = create_config(sm, variant("AllTraffic", model))
    sm.update_endpoint(EndpointName=name, EndpointConfigName=plain, RetainAllVariantProperties=True)
    wait_in_service(sm, name)
    summary = sm.describe_endpoint(EndpointName=name)["DataCaptureConfig"]
    assert summary["DestinationS3Uri"] == str(tmp_path / "first")
    runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1,2")
    wait_for_lines(lambda: captured(tmp_path / "first"), 1)

    sm.update_endpoint(
        EndpointName=name,
        EndpointConfigName=plain,
        RetainAllVariantProperties=True,
        ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DataCaptureConfig"}],
    )
    wait_in_service(sm, name)
    assert "DataCaptureConfig" not in sm.describe_endpoint(EndpointName=name)


def test_a_failing_destination_never_fails_an_invocation(server, sm, runtime, models, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    name = deploy(sm, models["identity"], capture_config(str(tmp_path / "a-file")))
    answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1,2")
    assert answer["Body"].read() == b"1,2"
    wait_until(lambda: f"data capture of {name}/AllTraffic" in server.log_text())


@pytest.mark.parametrize(
    ("capture", "fragment"),
    [
        (capture_config("s3://b/p", percentage=101), "less than or equal to 100"),
        (capture_config("not-a-uri"), "regular expression pattern"),
        (capture_config("https://b.s3.amazonaws.com/p"), "cannot be written by moorage"),
        (capture_config("file://elsewhere/p"), "not a local folder"),
        (capture_config("s3://b/p", modes=("Both",)), "enum value set"),
    ],
)
def test_invalid_capture_config_is_refused(sm, capture, fragment):
    code, message = error_of(
        sm.create_endpoint_config,
        EndpointConfigName=unique("bad"),
        ProductionVariants=[variant("v", "m")],
        DataCaptureConfig=capture,
    )
    assert code == "ValidationException"
    assert fragment in message


def test_last_lines_are_written_at_stop_and_unsampled_ones_never(tmp_path, models):
    env = {"MOORAGE_CAPTURE_FLUSH_INTERVAL": "600"}
    with running_server(tmp_path / "data", env=env) as server:
        sm, runtime = server.client("sagemaker"), server.client("sagemaker-runtime")
        everything = capture_config(str(tmp_path / "all"))
        nothing = capture_config(str(tmp_path / "none"), percentage=0)
        disabled = capture_config(str(tmp_path / "off"), EnableCapture=False)
        names = [deploy(sm, models["identity"], c) for c in (everything, nothing, disabled)]
        for name in names:
            for _ in range(5):
                runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1")
        summary = sm.describe_endpoint(EndpointName=names[2])["DataCaptureConfig"]
        assert (summary["EnableCapture"], summary["CaptureStatus"]) == (False, "Stopped")
        assert not (tmp_path / "all").exists()
    assert sum(len(lines) for lines in captured(tmp_path / "all").values()) == 5
    assert not (tmp_path / "none").exists()
    assert not (tmp_path / "off").exists()
