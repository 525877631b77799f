"""Multi-model endpoints (Mode=MultiModel) of ``moorage server``, driven by boto3 only.

Every model here answers with its own identity (a scikit-learn DummyRegressor predicting the
model's number), so each answer shows which model served it.
"""

import json
import os
import re
import sys
import threading
import urllib.request
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from moorage.artifacts import DiskBudget, ModelCache
from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import wait_until
from tests.integration.server import FAST_WAITER, running_server

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROWS = json.dumps([[5.1, 3.5, 1.4, 0.2]]).encode()
MODELS = 52
S3_ENV = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def numbered_model(dest, number: int):
    """A sklearn_default model folder whose model predicts ``number`` for every row."""
    import joblib
    from sklearn.dummy import DummyRegressor

    folder = model_dir("sklearn_default", dest)
    model = DummyRegressor(strategy="constant", constant=number).fit([[0, 0, 0, 0]], [number])
    joblib.dump(model, folder / "model.joblib")
    return folder


def model_name(number: int) -> str:
    # Some models sit in a sub-folder: TargetModel is a path relative to the prefix.
    return (
        f"group-{number % 2}/m{number:02d}.tar.gz" if number % 5 == 0 else f"m{number:02d}.tar.gz"
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Built model folders: ``numbered[i]`` predicts i; ``broken``'s model_fn raises."""
    root = tmp_path_factory.mktemp("library")
    return {
        "numbered": [numbered_model(root / f"n{i}", i) for i in range(MODELS + 3)],
        "broken": model_dir("model_fn_raises", root / "broken"),
    }


@pytest.fixture(scope="module")
def prefix(tmp_path_factory, library):
    """A folder of MODELS tarballs, named by model_name()."""
    root = tmp_path_factory.mktemp("prefix")
    for number in range(MODELS):
        archive = root / model_name(number)
        archive.parent.mkdir(exist_ok=True)
        pack(library["numbered"][number], archive)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_endpoint):
    env = {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    with running_server(tmp_path_factory.mktemp("data"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def sm(server):
    return server.client("sagemaker")


@pytest.fixture(scope="module")
def runtime(server):
    return server.client("sagemaker-runtime")


def deploy(
    sm, prefix_url: str, *, count=1, environment=None, cache="Enabled", image=SKLEARN_IMAGE
) -> str:
    name = f"mme-{uuid.uuid4().hex[:8]}"
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": prefix_url,
            "Mode": "MultiModel",
            "MultiModelConfig": {"ModelCacheSetting": cache},
            "Environment": environment or {},
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/any",
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": count,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    return name


def predict(runtime, endpoint: str, target: str):
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, TargetModel=target, ContentType="application/json", Body=ROWS
    )
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    return json.loads(answer["Body"].read())


def error_of(runtime, endpoint: str, **kwargs):
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Body=ROWS, **kwargs
        )
    return caught.value.response


def metric(server, name: str, endpoint: str) -> float:
    """The value of ``name`` for ``endpoint``, summed over its label sets, from /metrics."""
    with urllib.request.urlopen(f"{server.url}/metrics") as answer:
        text = answer.read().decode()
    pattern = re.compile(rf'^{name}\{{[^}}]*EndpointName="{endpoint}"[^}}]*\}} (\S+)$', re.M)
    return sum(float(value) for value in pattern.findall(text))


@pytest.mark.timeout(300)
def test_many_models_rotate_through_a_small_cache(server, sm, runtime, prefix):
    # Three models fit on each of the two instances; MOORAGE_MAX_LOADED_MODELS keeps the test
    # independent of how much memory a model takes.
    endpoint = deploy(
        sm,
        f"file://{prefix}/",
        count=2,
        environment={"MOORAGE_MAX_LOADED_MODELS": "3", "MOORAGE_MEMORY_BUDGET_MB": "2048"},
    )
    for number in range(MODELS):
        assert predict(runtime, endpoint, model_name(number)) == [number]
    # The last models are still loaded: hits, answered by the right model.
    for number in range(MODELS - 3, MODELS):
        assert predict(runtime, endpoint, model_name(number)) == [number]
    assert metric(server, "ModelUnloadingTime_microseconds_count", endpoint) > 0
    assert metric(server, "ModelLoadingTime_microseconds_count", endpoint) >= MODELS
    assert 0 < metric(server, "LoadedModelCount", endpoint) <= 6
    assert metric(server, "ModelCacheHit_sum", endpoint) >= 3
    assert metric(server, "ModelCacheHit_count", endpoint) == MODELS + 3
    assert metric(server, "ModelLoadingWaitTime_microseconds_count", endpoint) >= MODELS
    assert metric(server, "Invocations_total", endpoint) == MODELS + 3


def test_model_added_after_creation_is_served(sm, runtime, tmp_path, library):
    folder = tmp_path / "models"
    folder.mkdir()
    pack(library["numbered"][1], folder / "first.tar.gz")
    endpoint = deploy(sm, str(folder))
    assert predict(runtime, endpoint, "first.tar.gz") == [1]
    (folder / "late").mkdir()
    pack(library["numbered"][MODELS], folder / "late" / "added.tar.gz")
    assert predict(runtime, endpoint, "late/added.tar.gz") == [MODELS]


def test_concurrent_first_calls_load_the_model_once(server, sm, runtime, prefix):
    endpoint = deploy(sm, f"file://{prefix}")
    answers: list[object] = []
    barrier = threading.Barrier(12)

    def call() -> None:
        client = server.client("sagemaker-runtime")
        barrier.wait()
        answers.append(predict(client, endpoint, model_name(7)))

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [[7]] * 12
    assert metric(server, "ModelLoadingTime_microseconds_count", endpoint) == 1
    assert metric(server, "ModelCacheHit_count", endpoint) == 12


def test_hot_model_spreads_to_another_instance(server, sm, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    pack(model_dir("slow", tmp_path / "slow"), folder / "slow.tar.gz")
    endpoint = deploy(sm, str(folder), count=2)
    stop = threading.Event()

    def keep_calling() -> None:
        client = server.client("sagemaker-runtime")
        while not stop.is_set():
            client.invoke_endpoint(
                EndpointName=endpoint, TargetModel="slow.tar.gz", Body=b'{"sleep": 0.2}'
            )

    threads = [threading.Thread(target=keep_calling) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        # Six callers keep the first copy's one worker busy: a second instance loads it too.
        wait_until(lambda: metric(server, "LoadedModelCount", endpoint) == 2, timeout=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert metric(server, "ModelLoadingTime_microseconds_count", endpoint) == 2


def test_bad_target_models_are_refused_and_the_endpoint_keeps_serving(runtime, sm, prefix):
    endpoint = deploy(sm, f"file://{prefix}")
    missing = error_of(runtime, endpoint, TargetModel="nope/missing.tar.gz")
    assert missing["Error"]["Code"] == "ValidationError"
    assert "Failed to find model data" in missing["Error"]["Message"]
    assert "nope/missing.tar.gz" in missing["Error"]["Message"]
    for target in ("../m01.tar.gz", "group-0/../m01.tar.gz", "/etc/passwd", "a//m01.tar.gz",
                   "a\\m01.tar.gz", "./m01.tar.gz", "m01.tar.gz/"):  # fmt: skip
        refused = error_of(runtime, endpoint, TargetModel=target)
        assert refused["Error"]["Code"] == "ValidationError", target
        assert refused["ResponseMetadata"]["HTTPStatusCode"] == 400
    no_target = error_of(runtime, endpoint)
    assert no_target["Error"]["Code"] == "ValidationError"
    assert "TargetModel" in no_target["Error"]["Message"]
    assert predict(runtime, endpoint, model_name(1)) == [1]


def test_failed_load_is_a_model_error_and_is_retried(sm, runtime, tmp_path, library):
    folder = tmp_path / "models"
    folder.mkdir()
    pack(library["broken"], folder / "model.tar.gz")
    endpoint = deploy(sm, str(folder))
    for _ in range(2):  # not remembered: each call tries the load again
        failed = error_of(runtime, endpoint, TargetModel="model.tar.gz")
        assert failed["Error"]["Code"] == "ModelError"
        assert failed["ResponseMetadata"]["HTTPStatusCode"] == 424
        assert "bad weights" in failed["OriginalMessage"]
        assert failed["OriginalStatusCode"] == 500
    pack(library["numbered"][3], folder / "fixed.tar.gz")
    assert predict(runtime, endpoint, "fixed.tar.gz") == [3]
    # The same name, now with a good archive, loads on the next call.
    pack(library["numbered"][4], folder / "model.tar.gz")
    assert predict(runtime, endpoint, "model.tar.gz") == [4]


def test_target_model_on_a_single_model_endpoint_is_refused(sm, runtime, tmp_path, library):
    archive = pack(library["numbered"][2], tmp_path / "single.tar.gz")
    name = f"single-{uuid.uuid4().hex[:8]}"
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": f"file://{archive}"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/any",
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    refused = error_of(runtime, name, TargetModel="m01.tar.gz")
    assert refused["Error"]["Code"] == "ValidationError"


def test_s3_prefix(server, sm, runtime, s3_endpoint, library, tmp_path):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **{
        "aws_access_key_id": "local", "aws_secret_access_key": "local"})  # fmt: skip
    s3.create_bucket(Bucket="models")
    for number in (5, 6):
        archive = pack(library["numbered"][number], tmp_path / f"{number}.tar.gz")
        s3.upload_file(str(archive), "models", f"mme/v1/model-{number}.tar.gz")
    endpoint = deploy(sm, "s3://models/mme/v1")
    assert predict(runtime, endpoint, "model-5.tar.gz") == [5]
    assert predict(runtime, endpoint, "model-6.tar.gz") == [6]
    missing = error_of(runtime, endpoint, TargetModel="model-7.tar.gz")
    assert missing["Error"]["Code"] == "ValidationError"
    assert "bucket: models, key: mme/v1/model-7.tar.gz" in missing["Error"]["Message"]
    # Uploaded after the endpoint was created: served at once.
    archive = pack(library["numbered"][7], tmp_path / "7.tar.gz")
    s3.upload_file(str(archive), "models", "mme/v1/model-7.tar.gz")
    assert predict(runtime, endpoint, "model-7.tar.gz") == [7]


def test_disabled_cache_unloads_after_each_invocation(server, sm, runtime, prefix):
    endpoint = deploy(sm, f"file://{prefix}/", cache="Disabled")
    assert predict(runtime, endpoint, model_name(2)) == [2]
    wait_until(lambda: metric(server, "ModelUnloadingTime_microseconds_count", endpoint) == 1)
    assert metric(server, "LoadedModelCount", endpoint) == 0
    assert predict(runtime, endpoint, model_name(2)) == [2]
    assert metric(server, "ModelCacheHit_sum", endpoint) == 0


def test_slow_load_answers_model_not_ready_and_keeps_loading(tmp_path):
    folder = tmp_path / "models"
    slow = model_dir("slow_load", tmp_path / "slow")
    (slow / "seconds.txt").write_text("4")
    (slow / "name.txt").write_text("slow-one")
    folder.mkdir()
    pack(slow, folder / "slow.tar.gz")
    env = {"MOORAGE_MODEL_LOAD_WAIT": "1"}
    with running_server(tmp_path / "data", env=env) as server:
        sm, runtime = server.client("sagemaker"), server.client("sagemaker-runtime")
        endpoint = deploy(sm, str(folder))
        waited = error_of(runtime, endpoint, TargetModel="slow.tar.gz")
        assert waited["Error"]["Code"] == "ModelNotReadyException"
        assert waited["ResponseMetadata"]["HTTPStatusCode"] == 429

        def loaded() -> object:
            try:
                answer = runtime.invoke_endpoint(
                    EndpointName=endpoint, TargetModel="slow.tar.gz", Body=b"{}"
                )
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])
                return None
            return json.loads(answer["Body"].read())

        codes: list[str] = []
        assert wait_until(loaded, timeout=60) == {"model": "slow-one"}
        assert set(codes) <= {"ModelNotReadyException"}
        assert metric(server, "ModelLoadingTime_microseconds_count", endpoint) == 1


def test_create_model_checks_multi_model_settings(sm):
    with pytest.raises(ClientError) as caught:
        sm.create_model(
            ModelName=f"bad-{uuid.uuid4().hex[:8]}",
            PrimaryContainer={
                "Image": SKLEARN_IMAGE,
                "ModelDataUrl": "/tmp/models",
                "Mode": "MultiModel",
                "Environment": {"MOORAGE_MEMORY_BUDGET_MB": "lots"},
            },
        )
    assert "MOORAGE_MEMORY_BUDGET_MB" in caught.value.response["Error"]["Message"]


MME_SERVE_SCRIPT = '''#!{python}
"""A bring-your-own-container multi-model server: loads get a local folder, as on SageMaker."""
import http.server, json, os, pathlib

models = {{}}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self._answer(200 if self.path == "/ping" else 404, b"{{}}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/models":
            load = json.loads(body)
            models[load["model_name"]] = load["url"]
            self._answer(200, b"{{}}")
            return
        name = self.path.split("/")[2]
        target = self.headers["X-Amzn-SageMaker-Target-Model"]
        # Read at every request, as a model server may: the folder must stay while loaded.
        files = sorted(p.name for p in pathlib.Path(models[name]).iterdir())
        answer = {{"files": files, "target": target, "folder": models[name]}}
        self._answer(200, json.dumps(answer).encode())

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def test_bring_your_own_multi_model_server_loads_local_folders(sm, runtime, tmp_path, prefix):
    serve = tmp_path / "serve"
    serve.write_text(MME_SERVE_SCRIPT.format(python=sys.executable))
    serve.chmod(0o755)
    endpoint = deploy(sm, str(prefix), image=f"file://{serve}")
    answer = runtime.invoke_endpoint(EndpointName=endpoint, TargetModel=model_name(3), Body=b"{}")
    answered = json.loads(answer["Body"].read())
    assert answered["files"] == ["code", "model.joblib"]
    assert answered["target"] == model_name(3)


def test_folders_fetched_for_a_container_are_evicted_only_once_it_is_gone(
    server, sm, runtime, tmp_path
):
    serve = tmp_path / "serve"
    serve.write_text(MME_SERVE_SCRIPT.format(python=sys.executable))
    serve.chmod(0o755)
    # An archive of its own: the cache is keyed by content, and the other tests' endpoints
    # keep their models loaded, so a shared archive's folder could be in use elsewhere.
    own = model_dir("sklearn_default", tmp_path / "own")
    (own / "unique.txt").write_text(uuid.uuid4().hex)
    (tmp_path / "prefix").mkdir()
    pack(own, tmp_path / "prefix" / "own.tar.gz")
    endpoint = deploy(sm, str(tmp_path / "prefix"), image=f"file://{serve}")

    def files() -> dict:
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, TargetModel="own.tar.gz", Body=b"{}"
        )
        return json.loads(answer["Body"].read())

    first = files()
    # As a full disk would, from another process: everything no process uses goes.
    cache = ModelCache(server.data_dir / "cache" / "models", DiskBudget(max_bytes=1))
    cache.evict()
    assert files() == first
    sm.delete_endpoint(EndpointName=endpoint)

    def is_evicted() -> bool:
        cache.evict()
        return not os.path.exists(first["folder"])

    wait_until(is_evicted)


def test_one_csv_row_is_a_batch_of_one_as_in_the_scikit_learn_image(sm, runtime, prefix):
    endpoint = deploy(sm, str(prefix))
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        TargetModel=model_name(3),
        ContentType="text/csv",
        Body=b"5.1,3.5,1.4,0.2",
    )
    assert json.loads(answer["Body"].read()) == [3.0]
