"""``moorage serve-model`` as a user runs it: the console command, the bundled example."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import urllib3

from tests.integration.instance import wait_until


def test_serve_model_serves_the_bundled_example(tmp_path):
    # The console script lands next to the interpreter that installed moorage.
    command = shutil.which("moorage", path=os.path.dirname(sys.executable)) or shutil.which(
        "moorage"
    )
    if command is None:
        pytest.fail("the moorage command is not installed")
    process = subprocess.Popen(
        [command, "serve-model", "--port", "0", "--cache-dir", str(tmp_path)],
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
