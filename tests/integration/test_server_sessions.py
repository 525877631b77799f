"""Stateful sessions through boto3: a session's requests reach the instance that opened it."""

import sys
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.integration.test_server_fleet import (
    create_config,
    create_endpoint,
    create_model,
    variant,
)

# A stateful model: it keeps a counter per session, in its own process only.
STATEFUL_SERVE = """#!{python}
import datetime, http.server, os, uuid

sessions = {{}}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self._answer(200 if self.path == "/ping" else 404, b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        session = self.headers.get("X-Amzn-SageMaker-Session-Id")
        if session == "NEW_SESSION":
            session = str(uuid.uuid4())
            sessions[session] = 0
            expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=10)
            opened = f"{{session}}; Expires={{expires:%Y-%m-%dT%H:%M:%SZ}}"
            return self._answer(200, b"opened", [("X-Amzn-SageMaker-New-Session-Id", opened)])
        if session not in sessions:
            return self._answer(400, f"unknown session {{session}}".encode())
        if body == b"close":
            del sessions[session]
            return self._answer(200, b"closed", [("X-Amzn-SageMaker-Closed-Session-Id", session)])
        sessions[session] += 1
        self._answer(200, f"{{os.getpid()}}:{{sessions[session]}}".encode())

    def _answer(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def stateful_endpoint(sm, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("stateful")
    serve = folder / "serve"
    serve.write_text(STATEFUL_SERVE.format(python=sys.executable))
    serve.chmod(0o755)
    model = create_model(sm, f"file://{folder}/unused.tar.gz", image=f"file://{serve}")
    return create_endpoint(sm, create_config(sm, variant("AllTraffic", model, count=3)))


def call(runtime, endpoint: str, session: str, body: bytes = b"next") -> dict:
    return runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="text/plain", Body=body, SessionId=session
    )


def test_a_session_stays_on_its_instance_until_closed(runtime, stateful_endpoint):
    opened = call(runtime, stateful_endpoint, "NEW_SESSION")
    session, _, expires = opened["NewSessionId"].partition("; ")
    assert expires.startswith("Expires=")

    answers = [call(runtime, stateful_endpoint, session)["Body"].read() for _ in range(12)]
    pids = {answer.split(b":")[0] for answer in answers}
    assert len(pids) == 1
    assert [int(answer.split(b":")[1]) for answer in answers] == list(range(1, 13))

    streamed = runtime.invoke_endpoint_with_response_stream(
        EndpointName=stateful_endpoint, ContentType="text/plain", Body=b"next", SessionId=session
    )
    parts = b"".join(event["PayloadPart"]["Bytes"] for event in streamed["Body"])
    assert parts == pids.pop() + b":13"

    closed = call(runtime, stateful_endpoint, session, b"close")
    assert closed["ClosedSessionId"] == session
    # Closed: routed as any request; no instance knows it any more, and the model says so.
    with pytest.raises(ClientError, match="unknown session"):
        call(runtime, stateful_endpoint, session)


def test_sessions_are_independent(runtime, stateful_endpoint):
    sessions = [
        call(runtime, stateful_endpoint, "NEW_SESSION")["NewSessionId"].split(";")[0]
        for _ in range(6)
    ]
    for _ in range(3):
        for session in sessions:
            call(runtime, stateful_endpoint, session)
    counts = [call(runtime, stateful_endpoint, s)["Body"].read().split(b":")[1] for s in sessions]
    assert counts == [b"4"] * len(sessions)


def test_session_ids_are_checked(runtime, stateful_endpoint):
    with pytest.raises(ClientError, match="must be NEW_SESSION or a session's id") as caught:
        call(runtime, stateful_endpoint, "not_an_id")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError, match="cannot be opened by InvokeEndpointWithResponseStream"):
        runtime.invoke_endpoint_with_response_stream(
            EndpointName=stateful_endpoint, Body=b"x", SessionId="NEW_SESSION"
        )
    # An id moorage never saw goes to some instance, and the model answers for it.
    with pytest.raises(ClientError, match="unknown session"):
        call(runtime, stateful_endpoint, uuid.uuid4().hex)
