"""An unsigned server answers only requests addressed to an IP address or localhost, so a web
page cannot drive it through DNS rebinding."""

import http.client
import json

import pytest

from tests.integration.server import running_server

TARGET = "SageMaker.ListEndpoints"


def ask(server, method: str, path: str, host: str, body: bytes = b"", **headers) -> tuple:
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", host)
        for name, value in headers.items():
            connection.putheader(name.replace("_", "-"), value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def control_plane(server, host: str) -> tuple:
    return ask(
        server,
        "POST",
        "/",
        host,
        b"{}",
        X_Amz_Target=TARGET,
        Content_Type="application/x-amz-json-1.1",
    )


@pytest.fixture(scope="module")
def allowing_server(tmp_path_factory):
    env = {"MOORAGE_ALLOWED_HOSTS": "moorage.internal"}
    with running_server(tmp_path_factory.mktemp("data"), env=env) as running:
        yield running


def test_a_foreign_host_name_is_refused_everywhere_but_health(server):
    status, body = control_plane(server, "rebound.example:8080")
    assert status == 403
    assert json.loads(body)["__type"] == "AccessDeniedException"
    assert b"MOORAGE_ALLOWED_HOSTS" in body
    status, _ = ask(server, "POST", "/endpoints/any/invocations", "rebound.example", b"{}")
    assert status == 403
    status, _ = ask(server, "GET", "/console", "rebound.example")
    assert status == 403
    assert ask(server, "GET", "/healthz", "rebound.example")[0] == 200


def test_addresses_and_localhost_are_answered(server):
    for host in ("127.0.0.1", "localhost:8080", "[::1]:8080"):
        status, body = control_plane(server, host)
        assert status == 200, body
        assert "Endpoints" in json.loads(body)


def test_allowed_names_are_answered(allowing_server):
    assert control_plane(allowing_server, "moorage.internal:8080")[0] == 200
    assert control_plane(allowing_server, "other.internal")[0] == 403
