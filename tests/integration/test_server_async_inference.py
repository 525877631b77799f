"""Asynchronous inference through boto3: InvokeEndpointAsync, results in files and in S3,
failures, notifications, and requests that survive a server killed mid-way."""

import base64
import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import time
import urllib.request
import warnings
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

with warnings.catch_warnings():
    # The v2 SDK warns that v3 exists; v2 is what most users' code still calls.
    warnings.simplefilter("ignore")
    import sagemaker
    from sagemaker.async_inference import AsyncInferenceConfig, WaiterConfig
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import JSONSerializer

from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import wait_until
from tests.integration.server import FAST_WAITER, running_server
from tests.integration.test_server_fleet import variant
from tests.integration.test_server_lifecycle import SKLEARN_IMAGE, unique

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def https_files(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 for the files of a folder, and its certificate (which the
    moorage server is told to trust through SSL_CERT_FILE)."""
    folder = tmp_path_factory.mktemp("https")
    cert, key = self_signed_certificate(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder / "files"))
    (folder / "files").mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield SimpleNamespace(
            folder=folder / "files", url=f"https://127.0.0.1:{httpd.server_port}", cert=cert
        )
    finally:
        httpd.shutdown()
        httpd.server_close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_endpoint, https_files):
    env = {
        **S3_ENV,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ENDPOINT_URL_SNS": s3_endpoint,
        "SSL_CERT_FILE": str(https_files.cert),
    }
    with running_server(tmp_path_factory.mktemp("data"), env=env) as running:
        yield running


def create_model(sm, fixture: str, folder: Path) -> str:
    archive = pack(model_dir(fixture, folder / fixture), folder / f"{fixture}.tar.gz")
    name = unique("m")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": f"file://{archive}"},
    )
    return name


def deploy_async(sm, model: str, output: str, failure: str | None = None, **config) -> str:
    output_config = {"S3OutputPath": output, **({"S3FailurePath": failure} if failure else {})}
    name = unique("cfg")
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[variant("A", model)],
        AsyncInferenceConfig={"OutputConfig": {**output_config, **config}},
    )
    endpoint = unique("ep")
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    return endpoint


def local_file(location: str) -> Path:
    assert location.startswith("file://"), location
    return Path(location.removeprefix("file://"))


def read_when_written(path: Path, timeout: float = 30) -> bytes:
    wait_until(path.exists, timeout=timeout)
    return path.read_bytes()


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("async")
    return {"in": root / "in", "out": root / "out", "fail": root / "fail"}


@pytest.fixture(scope="module")
def slow_endpoint(sm, tmp_path_factory, places) -> str:
    model = create_model(sm, "slow", tmp_path_factory.mktemp("slow"))
    return deploy_async(sm, model, places["out"].as_uri(), places["fail"].as_uri())


@pytest.fixture(scope="module")
def errors_endpoint(sm, tmp_path_factory, places) -> str:
    model = create_model(sm, "errors", tmp_path_factory.mktemp("errors"))
    return deploy_async(sm, model, places["out"].as_uri(), places["fail"].as_uri())


def write_input(places, body: dict) -> str:
    places["in"].mkdir(parents=True, exist_ok=True)
    path = places["in"] / f"{unique('input')}.json"
    path.write_text(json.dumps(body))
    return path.as_uri()


def test_the_answer_is_written_to_the_output_location(sm, runtime, slow_endpoint, places):
    answer = runtime.invoke_endpoint_async(
        EndpointName=slow_endpoint,
        InputLocation=write_input(places, {"echo": "hello"}),
        ContentType="application/json",
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    inference_id = answer["InferenceId"]
    assert answer["OutputLocation"] == f"{places['out'].as_uri()}/{inference_id}.out"
    assert answer["FailureLocation"] == f"{places['fail'].as_uri()}/{inference_id}-error.out"
    result = json.loads(read_when_written(local_file(answer["OutputLocation"])))
    assert result["echo"] == "hello"
    assert not local_file(answer["FailureLocation"]).exists()

    described = sm.describe_endpoint(EndpointName=slow_endpoint)
    assert described["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == (
        places["out"].as_uri()
    )
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    assert config["AsyncInferenceConfig"]["OutputConfig"]["S3FailurePath"] == (
        places["fail"].as_uri()
    )


def test_inference_id_extension_and_filename_are_the_callers(runtime, slow_endpoint, places):
    answer = runtime.invoke_endpoint_async(
        EndpointName=slow_endpoint,
        InputLocation=write_input(places, {"echo": 7}),
        ContentType="application/json",
        InferenceId="my-request-1",
        S3OutputPathExtension="team/run-1",
        Filename="result.json",
    )
    assert answer["InferenceId"] == "my-request-1"
    assert answer["OutputLocation"] == f"{places['out'].as_uri()}/team/run-1/result.json"
    assert json.loads(read_when_written(local_file(answer["OutputLocation"])))["echo"] == 7


def test_a_failing_model_writes_its_error_to_the_failure_location(runtime, errors_endpoint, places):
    answer = runtime.invoke_endpoint_async(
        EndpointName=errors_endpoint,
        InputLocation=write_input(places, {"action": "raise"}),
        ContentType="application/json",
    )
    failure = read_when_written(local_file(answer["FailureLocation"])).decode()
    assert "boom" in failure
    assert not local_file(answer["OutputLocation"]).exists()


def test_an_inline_body_is_the_input(runtime, slow_endpoint):
    answer = runtime.invoke_endpoint_async(
        EndpointName=slow_endpoint,
        Body=json.dumps({"echo": "inline"}).encode(),
        ContentType="application/json",
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    result = json.loads(read_when_written(local_file(answer["OutputLocation"])))
    assert result["echo"] == "inline"


def test_an_https_input_location_is_read(runtime, slow_endpoint, https_files):
    (https_files.folder / "request.json").write_text(json.dumps({"echo": "over https"}))
    answer = runtime.invoke_endpoint_async(
        EndpointName=slow_endpoint,
        InputLocation=f"{https_files.url}/request.json",
        ContentType="application/json",
    )
    result = json.loads(read_when_written(local_file(answer["OutputLocation"])))
    assert result["echo"] == "over https"

    missing = runtime.invoke_endpoint_async(
        EndpointName=slow_endpoint,
        InputLocation=f"{https_files.url}/missing.json",
        ContentType="application/json",
    )
    failure = read_when_written(local_file(missing["FailureLocation"])).decode()
    assert "Failed to read the input" in failure
    assert "404" in failure


def test_an_input_that_cannot_be_read_is_a_failure(runtime, slow_endpoint, places):
    answer = runtime.invoke_endpoint_async(
        EndpointName=slow_endpoint,
        InputLocation=(places["in"] / "missing.json").as_uri(),
        ContentType="application/json",
    )
    failure = read_when_written(local_file(answer["FailureLocation"])).decode()
    assert "Failed to read the input" in failure


def test_requests_the_endpoint_cannot_take_are_validation_errors(
    sm, runtime, slow_endpoint, places, tmp_path
):
    def refused(call, **kwargs) -> str:
        with pytest.raises(ClientError) as caught:
            call(**kwargs)
        assert caught.value.response["Error"]["Code"] == "ValidationError"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        return caught.value.response["Error"]["Message"]

    good = write_input(places, {})
    invoke = runtime.invoke_endpoint_async
    assert "InvokeEndpointAsync" in refused(
        runtime.invoke_endpoint, EndpointName=slow_endpoint, Body=b"{}"
    )
    assert "exactly one of InputLocation" in refused(invoke, EndpointName=slow_endpoint)
    assert "exactly one of InputLocation" in refused(
        invoke, EndpointName=slow_endpoint, InputLocation=good, Body=b"{}"
    )
    assert "at most 128000" in refused(invoke, EndpointName=slow_endpoint, Body=b"1" * 128_001)
    assert "cannot be read" in refused(
        invoke, EndpointName=slow_endpoint, InputLocation="ftp://host/x"
    )
    assert "RequestTTLSeconds" in refused(
        invoke, EndpointName=slow_endpoint, InputLocation=good, RequestTTLSeconds=30000
    )
    assert "Filename" in refused(
        invoke, EndpointName=slow_endpoint, InputLocation=good, Filename="a.b.c"
    )
    assert "not found" in refused(invoke, EndpointName="nowhere", InputLocation=good)

    model = create_model(sm, "slow", tmp_path)
    config = unique("cfg")
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant("A", model)])
    realtime = unique("ep")
    sm.create_endpoint(EndpointName=realtime, EndpointConfigName=config)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=realtime, WaiterConfig=FAST_WAITER)
    assert "not an asynchronous endpoint" in refused(
        invoke, EndpointName=realtime, InputLocation=good
    )
    with pytest.raises(ClientError, match="between real-time and asynchronous"):
        sm.update_endpoint(EndpointName=slow_endpoint, EndpointConfigName=config)


def test_configs_moorage_cannot_serve_asynchronously_are_refused(sm, tmp_path):
    model = create_model(sm, "slow", tmp_path)
    serverless = {
        "VariantName": "A",
        "ModelName": model,
        "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1},
    }
    cases = [
        ([serverless], {"S3OutputPath": "s3://bucket/out"}, "serverless"),
        ([variant("A", model)], {"S3OutputPath": "ftp://host/out"}, "S3OutputPath"),
        (
            [variant("A", model)],
            {"S3OutputPath": "s3://bucket/out", "S3FailurePath": "s3://"},
            "S3FailurePath",
        ),
    ]
    for variants, output, wording in cases:
        with pytest.raises(ClientError, match=f"(?i){wording}") as caught:
            sm.create_endpoint_config(
                EndpointConfigName=unique("cfg"),
                ProductionVariants=variants,
                AsyncInferenceConfig={"OutputConfig": output},
            )
        assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_results_in_s3_and_notifications_on_sns(sm, runtime, s3_endpoint, tmp_path):
    clients = {"endpoint_url": s3_endpoint, "region_name": "us-east-1", **_keys()}
    s3, sns, sqs = (boto3.client(name, **clients) for name in ("s3", "sns", "sqs"))
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/request.json", Body=b'{"echo": "via s3"}')
    topic = sns.create_topic(Name=unique("done"))["TopicArn"]
    queue = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    model = create_model(sm, "slow", tmp_path)
    endpoint = deploy_async(
        sm,
        model,
        f"s3://{bucket}/out",
        NotificationConfig={
            "SuccessTopic": topic,
            "IncludeInferenceResponseIn": ["SUCCESS_NOTIFICATION_TOPIC"],
        },
    )
    answer = runtime.invoke_endpoint_async(
        EndpointName=endpoint,
        InputLocation=f"s3://{bucket}/in/request.json",
        ContentType="application/json",
    )
    key = answer["OutputLocation"].removeprefix(f"s3://{bucket}/")
    assert answer["FailureLocation"].startswith(f"s3://{bucket}/out/")

    def result() -> dict | None:
        try:
            obj = s3.get_object(Bucket=bucket, Key=key)
        except ClientError:
            return None
        assert obj["ContentType"] == "application/json"
        return json.loads(obj["Body"].read())

    wait_until(lambda: result() is not None, timeout=30)
    assert result()["echo"] == "via s3"

    received = []
    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
    assert received, "no notification arrived"
    notification = json.loads(json.loads(received[0]["Body"])["Message"])
    assert notification["invocationStatus"] == "Completed"
    assert notification["inferenceId"] == answer["InferenceId"]
    assert notification["responseParameters"]["outputLocation"] == answer["OutputLocation"]
    assert notification["requestParameters"]["endpointName"] == endpoint
    assert notification["eventName"] == "InferenceResult"
    assert b"via s3" in base64.b64decode(notification["responseBody"]["content"])


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
    }


def test_accepted_requests_survive_a_server_killed_mid_way(tmp_path):
    """One request running and one queued when the server is SIGKILLed: after a restart on the
    same data dir, both results are written."""
    env = {"MOORAGE_ASYNC_LEASE": "2"}
    places = {"in": tmp_path / "in", "out": tmp_path / "out"}
    marker = tmp_path / "started"
    with running_server(tmp_path / "data", env=env) as first:
        sm = first.client("sagemaker")
        endpoint = _deploy_one_at_a_time(sm, create_model(sm, "slow", tmp_path), places)
        runtime = first.client("sagemaker-runtime")
        slow_input = write_input(places, {"sleep": 60, "marker": str(marker), "echo": 1})
        running = runtime.invoke_endpoint_async(
            EndpointName=endpoint, InputLocation=slow_input, ContentType="application/json"
        )
        queued = runtime.invoke_endpoint_async(
            EndpointName=endpoint,
            InputLocation=write_input(places, {"echo": 2}),
            ContentType="application/json",
        )
        wait_until(marker.exists, timeout=30)
        backlog = f'ApproximateBacklogSize{{EndpointName="{endpoint}"}} 2.0'
        wait_until(lambda: backlog in _metrics(first), timeout=10)
        first.kill()
    # The restarted server runs the first request again; this time it need not wait.
    local_file(slow_input).write_text(json.dumps({"echo": 1}))
    with running_server(tmp_path / "data", env=env):
        for answer, echo in ((running, 1), (queued, 2)):
            result = json.loads(read_when_written(local_file(answer["OutputLocation"]), 60))
            assert result["echo"] == echo


def _deploy_one_at_a_time(sm, model: str, places) -> str:
    name = unique("cfg")
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[variant("A", model)],
        AsyncInferenceConfig={
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1},
            "OutputConfig": {"S3OutputPath": places["out"].as_uri()},
        },
    )
    endpoint = unique("ep")
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    return endpoint


def _metrics(server) -> str:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as answer:
        return answer.read().decode()


@pytest.mark.filterwarnings("ignore::sagemaker.deprecations.SageMakerV2DeprecationWarning")
def test_the_sagemaker_sdk_async_predictor_gets_its_result(
    sm, server, s3_endpoint, tmp_path, monkeypatch
):
    # The SDK's own S3 calls (uploading the input, polling the output) go to the same store.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    boto = boto3.Session(region_name="us-east-1", **_keys())
    bucket = unique("sdk-bucket")
    boto.client("s3").create_bucket(Bucket=bucket)
    session = sagemaker.Session(
        boto_session=boto,
        sagemaker_client=boto.client("sagemaker", endpoint_url=server.url),
        sagemaker_runtime_client=boto.client("sagemaker-runtime", endpoint_url=server.url),
        default_bucket=bucket,
    )
    archive = pack(model_dir("slow", tmp_path / "slow"), tmp_path / "slow.tar.gz")
    model = Model(
        image_uri=sagemaker.image_uris.retrieve("sklearn", "us-east-1", version="1.2-1"),
        model_data=f"file://{archive}",
        role="arn:aws:iam::000000000000:role/SageMakerRole",
        sagemaker_session=session,
        predictor_cls=Predictor,
    )
    name = unique("sdk-async")
    predictor = model.deploy(
        initial_instance_count=1,
        instance_type="ml.m5.large",
        endpoint_name=name,
        async_inference_config=AsyncInferenceConfig(
            output_path=f"s3://{bucket}/out", failure_path=f"s3://{bucket}/failed"
        ),
        serializer=JSONSerializer(),
        deserializer=JSONDeserializer(),
        wait=False,
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    response = predictor.predict_async(data={"echo": "from the sdk"})
    result = response.get_result(WaiterConfig(max_attempts=60, delay=0.5))
    assert result["echo"] == "from the sdk"
    assert response.output_path.startswith(f"s3://{bucket}/out/")
    # get_result leaves a thread polling the failure location; an object there ends it.
    failure_key = response.failure_path.removeprefix(f"s3://{bucket}/")
    boto.client("s3").put_object(Bucket=bucket, Key=failure_key, Body=b"")
    for thread in threading.enumerate():
        if "check_failure_file" in thread.name:
            thread.join(timeout=30)
