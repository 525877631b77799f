"""One instance serving one model over the container contract: real processes, real HTTP."""

import io
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.fixtures.builders import build_wheel, model_dir, pack
from tests.integration.instance import running_instance, wait_until

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    return model_dir("sklearn_default", tmp_path_factory.mktemp("iris") / "m", train_iris=True)


@pytest.fixture(scope="module")
def iris_instance(iris, tmp_path_factory):
    with running_instance(iris, tmp_path_factory.mktemp("run")) as instance:
        yield instance


def test_default_handlers_answer_json(iris_instance):
    response = iris_instance.invoke(json.dumps(IRIS_ROWS).encode())
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.data) == [0, 2]


def test_default_handlers_answer_csv(iris_instance):
    response = iris_instance.invoke(
        b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", "text/csv", Accept="text/csv"
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv"
    assert response.data.split() == [b"0", b"2"]


def test_default_handlers_answer_npy(iris_instance):
    buffer = io.BytesIO()
    np.save(buffer, np.array(IRIS_ROWS))
    response = iris_instance.invoke(
        buffer.getvalue(), "application/x-npy", Accept="application/x-npy"
    )
    assert response.status == 200
    assert np.load(io.BytesIO(response.data)).tolist() == [0, 2]


def test_json_with_charset_is_json(iris_instance):
    response = iris_instance.invoke(
        json.dumps(IRIS_ROWS).encode(), "application/json; charset=utf-8"
    )
    assert response.status == 200
    assert json.loads(response.data) == [0, 2]


def test_missing_content_type_defaults_to_json(iris_instance):
    response = iris_instance.invoke(json.dumps(IRIS_ROWS).encode(), content_type=None)
    assert response.status == 200
    assert json.loads(response.data) == [0, 2]


def test_unsupported_content_type_is_500_as_in_the_toolkit(iris_instance):
    response = iris_instance.invoke(b"<rows/>", "application/xml")
    assert response.status == 500
    assert b"application/xml" in response.data


def test_unsupported_accept_is_500_as_in_the_toolkit(iris_instance):
    response = iris_instance.invoke(json.dumps(IRIS_ROWS).encode(), Accept="image/png")
    assert response.status == 500


def test_bad_json_body_is_500_and_worker_survives(iris_instance):
    assert iris_instance.invoke(b"[[1, 2,").status == 500
    assert iris_instance.invoke(json.dumps(IRIS_ROWS).encode()).status == 200


def test_six_megabyte_body_is_accepted_and_larger_refused(iris_instance):
    rows = json.dumps([IRIS_ROWS[0]] * 200_000).encode()
    body = rows + b" " * (6 * 1024 * 1024 - len(rows))
    assert len(body) == 6 * 1024 * 1024
    response = iris_instance.invoke(body)
    assert response.status == 200
    assert len(json.loads(response.data)) == 200_000
    assert iris_instance.invoke(body + b" ").status == 413


def test_model_from_tarball(iris, tmp_path):
    archive = pack(iris, tmp_path / "model.tar.gz")
    for location in (archive, f"file://{archive}"):
        with running_instance(location, tmp_path) as instance:
            assert json.loads(instance.invoke(json.dumps(IRIS_ROWS).encode()).data) == [0, 2]


def test_script_from_submit_directory(tmp_path):
    code = model_dir("echo_context", tmp_path / "model") / "code"
    moved = code.rename(tmp_path / "elsewhere")
    env = {"SAGEMAKER_SUBMIT_DIRECTORY": str(moved), "SAGEMAKER_PROGRAM": "inference.py"}
    with running_instance(tmp_path / "model", tmp_path, env=env) as instance:
        assert instance.invoke(b"{}").status == 200


def test_script_at_archive_root(tmp_path):
    folder = model_dir("echo_context", tmp_path / "model")
    (folder / "code" / "inference.py").rename(folder / "inference.py")
    (folder / "code").rmdir()
    with running_instance(pack(folder, tmp_path / "m.tar.gz"), tmp_path) as instance:
        assert instance.invoke(b"{}").status == 200


def test_requirements_installed_from_local_wheel(tmp_path):
    folder = model_dir("with_requirements", tmp_path / "model")
    wheel = build_wheel(folder / "code")
    (folder / "code" / "requirements.txt").write_text(f"--no-index\n./{wheel.name}\n")
    with running_instance(pack(folder, tmp_path / "m.tar.gz"), tmp_path) as instance:
        response = instance.invoke(b"{}")
        assert response.data == b"hello from tinypkg"
        assert response.headers["Content-Type"] == "text/plain"


def test_context_sees_headers_and_sets_custom_attributes(tmp_path):
    with running_instance(model_dir("echo_context", tmp_path / "m"), tmp_path) as instance:
        response = instance.invoke(
            b'{"a": 1}',
            Accept="application/json",
            **{
                "X-Amzn-SageMaker-Custom-Attributes": "trace=1",
                "X-Amzn-SageMaker-Inference-Id": "inf-7",
                "X-Amzn-SageMaker-Target-Model": "a/b.tar.gz",
            },
        )
        assert response.status == 200
        assert response.headers["X-Amzn-SageMaker-Custom-Attributes"] == "echo=trace=1"
        seen = json.loads(response.data)
        assert seen["headers"]["x-amzn-sagemaker-inference-id"] == "inf-7"
        assert seen["headers"]["x-amzn-sagemaker-target-model"] == "a/b.tar.gz"
        assert seen["content_type"] == "application/json"
        assert seen["body_type"] == "str"
        assert seen["model_dir"] == str(tmp_path / "m")


def test_model_fn_raising_reports_its_reason(tmp_path):
    folder = model_dir("model_fn_raises", tmp_path / "m")
    with running_instance(folder, tmp_path, wait_ready=False) as instance:
        wait_until(lambda: instance.ping_status() == 500)
        reason = json.loads(instance.request("GET", "/ping").data)["reason"]
        assert "ValueError: bad weights" in reason
        response = instance.invoke(b"{}")
        assert response.status == 500
        assert b"bad weights" in response.data


def test_missing_script_reports_its_name(tmp_path):
    folder = model_dir("echo_context", tmp_path / "m")
    env = {"SAGEMAKER_PROGRAM": "nope.py"}
    with running_instance(folder, tmp_path, env=env, wait_ready=False) as instance:
        wait_until(lambda: instance.ping_status() == 500)
        assert "nope.py" in json.loads(instance.request("GET", "/ping").data)["reason"]


def test_unsafe_archive_is_refused(tmp_path):
    import tarfile

    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with running_instance(archive, tmp_path, wait_ready=False) as instance:
        wait_until(lambda: instance.ping_status() == 500)
        assert "escape.txt" in json.loads(instance.request("GET", "/ping").data)["reason"]
    assert not (tmp_path / "cache" / "escape.txt").exists()


@pytest.fixture
def slow_instance(tmp_path):
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"}
    with running_instance(model_dir("slow", tmp_path / "m"), tmp_path, env=env) as instance:
        yield instance


def _invoke_in_background(instance, body: dict) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(
        target=lambda: result.append(instance.invoke(json.dumps(body).encode()))
    )
    thread.start()
    return thread, result


def test_ping_answers_while_the_model_is_busy(slow_instance, tmp_path):
    marker = tmp_path / "started"
    thread, result = _invoke_in_background(slow_instance, {"sleep": 1.5, "marker": str(marker)})
    wait_until(marker.exists)
    assert slow_instance.ping_status() == 200
    thread.join()
    assert result[0].status == 200


def test_worker_killed_mid_request_answers_error_and_is_replaced(slow_instance, tmp_path):
    pid = json.loads(slow_instance.invoke(b'{"sleep": 0}').data)["pid"]
    marker = tmp_path / "started"
    thread, result = _invoke_in_background(slow_instance, {"sleep": 10, "marker": str(marker)})
    wait_until(marker.exists)
    os.kill(pid, signal.SIGKILL)
    thread.join()
    assert result[0].status == 500
    assert b"SIGKILL" in result[0].data
    response = wait_until(lambda: _ok(slow_instance.invoke(b'{"sleep": 0}')), timeout=30)
    assert json.loads(response.data)["pid"] != pid


def test_worker_still_busy_after_twice_the_timeout_is_replaced(slow_instance):
    pid = json.loads(slow_instance.invoke(b'{"sleep": 0}').data)["pid"]
    started = time.monotonic()
    assert slow_instance.invoke(b'{"sleep": 60}').status == 504
    # The worker ends itself at twice the timeout (4 s), long before its sleep would end.
    response = wait_until(lambda: _ok(slow_instance.invoke(b'{"sleep": 0}')), timeout=30)
    assert json.loads(response.data)["pid"] != pid
    assert time.monotonic() - started < 30


def _ok(response):
    return response if response.status == 200 else None


def test_prediction_slower_than_timeout_gets_504_and_worker_recovers(slow_instance):
    response = slow_instance.invoke(b'{"sleep": 3}')
    assert response.status == 504
    assert b"2 s" in response.data
    response = slow_instance.invoke(b'{"sleep": 0}')
    assert response.status == 200


def test_concurrent_requests_to_one_worker_get_their_own_answers(tmp_path):
    # One worker takes several requests at a time from the front (pool.py's _SOLO_DEPTH).
    sizes = [10, 70_000, 300_000, 2_000_000] * 10
    with running_instance(model_dir("identity", tmp_path / "m"), tmp_path) as instance:

        def call(number: int) -> bool:
            body = json.dumps({"n": number, "pad": "x" * sizes[number]}).encode()
            response = instance.invoke(body)
            return response.status == 200 and response.data == body

        with ThreadPoolExecutor(16) as pool:
            assert all(pool.map(call, range(len(sizes))))


def test_unknown_route_is_404(iris_instance):
    assert iris_instance.request("GET", "/nope").status == 404


def test_model_from_s3(iris, tmp_path, s3_endpoint):
    import boto3

    env = {
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="instance-models")
    s3.upload_file(
        str(pack(iris, tmp_path / "model.tar.gz")), "instance-models", "iris/model.tar.gz"
    )
    url = "s3://instance-models/iris/model.tar.gz"
    with running_instance(url, tmp_path, env=env) as instance:
        assert json.loads(instance.invoke(json.dumps(IRIS_ROWS).encode()).data) == [0, 2]


def test_scripts_written_for_the_inference_toolkit_run_unchanged(tmp_path):
    with running_instance(model_dir("toolkit_imports", tmp_path / "m"), tmp_path) as instance:
        response = instance.invoke(b"[[1, 2], [3, 4]]", Accept="application/json")
        assert response.status == 200
        assert json.loads(response.data) == [3, 7]
        refused = instance.invoke(b"[1, 2]")
        assert refused.status == 422
        assert b"expected rows of numbers" in refused.data
