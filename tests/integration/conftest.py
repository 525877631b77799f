"""A real S3-compatible server on loopback (moto's), for tests that fetch model data from S3.

Shared by the integration tests as the ``s3_endpoint`` fixture. The server runs in
its own process, so the test process keeps no moto state, and binds port 0: it prints its
address once listening, which is the only "ready" signal we wait for.
"""

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.fixtures.builders import model_dir, pack
from tests.integration.server import running_server

_SERVER = """
import sys
from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
sys.stdin.read()  # serve until the test session closes our stdin
server.stop()
"""


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a fresh S3 server for the session; credentials and region are up to you."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        address = server.stdout.readline().strip()
        if not address.startswith("http://"):
            raise RuntimeError(f"moto server did not start (exit code {server.wait()})")
        yield address
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """model.tar.gz files as file:// URLs: iris (scikit-learn), echo (context), broken."""
    root = tmp_path_factory.mktemp("artifacts")
    iris = model_dir("sklearn_default", root / "iris", train_iris=True)
    return {
        "iris": f"file://{pack(iris, root / 'iris.tar.gz')}",
        "echo": f"file://{pack(model_dir('echo_context', root / 'echo'), root / 'echo.tar.gz')}",
        "broken": f"file://{pack(model_dir('model_fn_raises', root / 'b'), root / 'b.tar.gz')}",
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One moorage server per test module."""
    with running_server(tmp_path_factory.mktemp("data")) as running:
        yield running


@pytest.fixture(scope="module")
def sm(server):
    return server.client("sagemaker")


@pytest.fixture(scope="module")
def runtime(server):
    return server.client("sagemaker-runtime")
