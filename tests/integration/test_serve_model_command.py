"""``moorage serve-model`` as a user runs it: the console command, the bundled example."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import urllib3

from tests.integration.instance import wait_until


def moorage_command() -> str:
    # The console script lands next to the interpreter that installed moorage.
    command = shutil.which("moorage", path=os.path.dirname(sys.executable)) or shutil.which(
        "moorage"
    )
    if command is None:
        pytest.fail("the moorage command is not installed")
    return command


def test_serve_model_serves_the_bundled_example(tmp_path):
    process = subprocess.Popen(
        [moorage_command(), "serve-model", "--port", "0", "--cache-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[-1].strip()
        http = urllib3.PoolManager(retries=False)
        wait_until(lambda: http.request("GET", url + "/ping").status == 200)
        response = http.request(
            "POST",
            url + "/invocations",
            body=b"[[1, 2, 3, 4]]",
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 200
        assert json.loads(response.data) == pytest.approx([7.1])
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(15) == 0
        process.stdout.close()


ANSWERING = """
def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    return {answer!r}, "text/plain"
"""


def test_reload_restarts_when_inference_py_changes(tmp_path):
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(ANSWERING.format(answer="first"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            moorage_command(),
            "serve-model",
            str(tmp_path / "model"),
            "--port",
            str(port),
            "--reload",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    http = urllib3.PoolManager(retries=False)

    def answer() -> bytes | None:
        try:
            response = http.request(
                "POST", f"http://127.0.0.1:{port}/invocations", body=b"x", timeout=5
            )
        except urllib3.exceptions.HTTPError:
            return None  # restarting
        return response.data if response.status == 200 else None

    try:
        assert wait_until(answer) == b"first"
        (code / "inference.py").write_text(ANSWERING.format(answer="second"))
        wait_until(lambda: answer() == b"second")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
        told = process.stderr.read()
        process.stderr.close()
    assert "inference.py changed; restarting" in told


def test_reload_refuses_what_it_cannot_watch(tmp_path):
    refused = subprocess.run(
        [moorage_command(), "serve-model", "s3://bucket/model.tar.gz", "--reload"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "--reload watches a local model folder or archive" in refused.stderr
