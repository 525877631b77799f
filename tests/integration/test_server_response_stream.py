"""InvokeEndpointWithResponseStream through boto3: the answer as event-stream PayloadParts."""

import json
import sys

import pytest
from botocore.exceptions import ClientError, EventStreamError

from tests.integration.server import running_server
from tests.integration.test_server_direct import deploy, multi_model_endpoint  # noqa: F401
from tests.integration.test_server_fleet import (
    create_config,
    create_endpoint,
    create_model,
    variant,
)


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


STREAMING_SERVE = '''#!{python}
"""A bring-your-own server that writes its answer in chunked pieces, as LLM servers do."""
import http.server, json, os, socket, sys, time

assert sys.argv[1:] == ["serve"], sys.argv


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, part in enumerate(request["parts"]):
            if index == 1 and request.get("wait_for"):
                deadline = time.monotonic() + 20
                while not os.path.exists(request["wait_for"]) and time.monotonic() < deadline:
                    time.sleep(0.01)
            if index == request.get("stall_at"):
                time.sleep(30)
            if index == request.get("break_at"):
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = part.encode()
            self.wfile.write(b"%x\\r\\n%s\\r\\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\\r\\n\\r\\n")
        self.wfile.flush()


port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


@pytest.fixture(scope="module")
def streaming_server(tmp_path_factory):
    """A server whose invocations time out after 3 s, with an endpoint on STREAMING_SERVE."""
    root = tmp_path_factory.mktemp("streaming")
    serve = root / "serve"
    serve.write_text(STREAMING_SERVE.format(python=sys.executable))
    serve.chmod(0o755)
    env = {"MOORAGE_INVOCATION_TIMEOUT": "3"}
    with running_server(root / "data", env=env) as running:
        sm = running.client("sagemaker")
        model = create_model(sm, f"file://{root}/unused.tar.gz", image=f"file://{serve}")
        endpoint = create_endpoint(sm, create_config(sm, variant("AllTraffic", model)))
        yield running, endpoint


def stream_from(streaming_server, **request):
    server, endpoint = streaming_server
    runtime = server.client("sagemaker-runtime", read_timeout=15)
    return runtime.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, ContentType="application/json", Body=json.dumps(request)
    )


def test_pieces_are_relayed_as_the_server_writes_them(streaming_server, tmp_path):
    go = tmp_path / "go"
    answer = stream_from(streaming_server, parts=["one ", "two ", "three"], wait_for=str(go))
    assert answer["ContentType"] == "text/event-stream"
    events = iter(answer["Body"])
    # The server holds back the rest until the first piece has arrived here.
    assert next(events)["PayloadPart"]["Bytes"] == b"one "
    go.touch()
    assert b"".join(e["PayloadPart"]["Bytes"] for e in events) == b"two three"


def first_then_error(answer) -> EventStreamError:
    """Read the first piece, then the error that must follow it."""
    events = iter(answer["Body"])
    try:
        assert next(events)["PayloadPart"]["Bytes"] == b"one "
        with pytest.raises(EventStreamError) as caught:
            next(events)
    finally:
        answer["Body"].close()
    return caught.value


def test_a_server_that_breaks_off_is_a_stream_broken_error(streaming_server):
    error = first_then_error(stream_from(streaming_server, parts=["one ", "two"], break_at=1))
    assert error.response["Error"]["Code"] == "ModelStreamError"
    assert "broke" in error.response["Error"]["Message"]


def test_a_server_that_stalls_is_a_timeout_error_and_the_endpoint_serves_on(streaming_server):
    error = first_then_error(stream_from(streaming_server, parts=["one ", "two"], stall_at=1))
    assert error.response["Error"]["Code"] == "ModelStreamError"
    assert "in time" in error.response["Error"]["Message"]
    again = stream_from(streaming_server, parts=["still ", "here"])
    assert b"".join(e["PayloadPart"]["Bytes"] for e in again["Body"]) == b"still here"
