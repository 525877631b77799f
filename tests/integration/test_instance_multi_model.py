"""The multi-model /models API of one instance (spec/CONTAINER.md §5)."""

import json
import os
import threading

import pytest

from moorage.artifacts import DiskBudget, ModelCache
from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import running_instance, wait_until

ROWS = json.dumps([[5.1, 3.5, 1.4, 0.2]]).encode()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    iris = model_dir("sklearn_default", root / "iris", train_iris=True)
    return {
        "iris": iris,
        "iris-tar": pack(iris, root / "iris.tar.gz"),
        "echo": model_dir("echo_context", root / "echo"),
        "broken": model_dir("model_fn_raises", root / "broken"),
    }


@pytest.fixture
def mme(tmp_path):
    with running_instance(None, tmp_path, args=("--multi-model",)) as instance:
        yield instance


def load(instance, name, url):
    body = json.dumps({"model_name": name, "url": str(url)}).encode()
    return instance.request("POST", "/models", body, {"Content-Type": "application/json"})


def invoke(instance, name, body=ROWS, **headers):
    headers.setdefault("Content-Type", "application/json")
    return instance.request("POST", f"/models/{name}/invoke", body, headers)


def test_load_invoke_describe_unload(mme, models):
    assert load(mme, "iris", models["iris"]).status == 200
    response = invoke(mme, "iris", **{"X-Amzn-SageMaker-Target-Model": "iris.tar.gz"})
    assert response.status == 200
    assert json.loads(response.data) == [0]
    described = json.loads(mme.request("GET", "/models/iris").data)
    assert described["modelName"] == "iris"
    assert described["modelUrl"] == str(models["iris"])
    assert mme.request("DELETE", "/models/iris").status == 200
    assert invoke(mme, "iris").status == 404
    assert mme.request("GET", "/models/iris").status == 404
    assert mme.request("DELETE", "/models/iris").status == 404


def test_loading_twice_is_409(mme, models):
    assert load(mme, "iris", models["iris-tar"]).status == 200
    assert load(mme, "iris", models["iris-tar"]).status == 409


def test_list_pages(mme, models):
    for name in ("a", "b", "c"):
        assert load(mme, name, models["echo"]).status == 200
    first = json.loads(mme.request("GET", "/models?limit=2").data)
    assert [m["modelName"] for m in first["models"]] == ["a", "b"]
    token = first["nextPageToken"]
    second = json.loads(mme.request("GET", f"/models?limit=2&next_page_token={token}").data)
    assert [m["modelName"] for m in second["models"]] == ["c"]
    assert "nextPageToken" not in second


def test_models_are_isolated(mme, models):
    assert load(mme, "iris", models["iris"]).status == 200
    assert load(mme, "echo", models["echo"]).status == 200
    assert json.loads(invoke(mme, "iris").data) == [0]
    echoed = json.loads(invoke(mme, "echo", b"{}").data)
    assert echoed["model_dir"] == str(models["echo"])


def test_failed_load_is_500_and_can_be_retried(mme, models):
    response = load(mme, "m", models["broken"])
    assert response.status == 500
    assert "bad weights" in json.loads(response.data)["message"]
    assert load(mme, "m", models["iris"]).status == 200
    assert invoke(mme, "m").status == 200


def test_unknown_model_is_404(mme):
    response = invoke(mme, "ghost")
    assert response.status == 404
    assert json.loads(response.data)["type"] == "ModelNotFoundException"


def test_single_model_route_is_refused(mme):
    assert mme.invoke(ROWS).status == 400


def test_full_instance_answers_507(tmp_path, models):
    env = {"MOORAGE_MAX_LOADED_MODELS": "1"}
    with running_instance(None, tmp_path, args=("--multi-model",), env=env) as instance:
        assert load(instance, "one", models["echo"]).status == 200
        assert load(instance, "two", models["echo"]).status == 507
        assert instance.request("DELETE", "/models/one").status == 200
        assert load(instance, "two", models["echo"]).status == 200


def test_load_answers_download_and_load_seconds(mme, models):
    response = load(mme, "iris", models["iris-tar"])
    assert response.status == 200
    answer = json.loads(response.data)
    assert answer["downloadSeconds"] >= 0
    assert answer["loadSeconds"] > 0


def test_describe_and_list_report_memory_and_last_use(mme, models):
    assert load(mme, "iris", models["iris"]).status == 200
    before = json.loads(mme.request("GET", "/models/iris").data)
    assert before["memoryBytes"] > 0
    assert invoke(mme, "iris").status == 200
    after = json.loads(mme.request("GET", "/models/iris").data)
    assert after["lastUsed"] >= before["lastUsed"] > 0
    listed = json.loads(mme.request("GET", "/models").data)["models"]
    assert listed[0]["modelName"] == "iris"
    assert listed[0]["memoryBytes"] > 0


def test_memory_route_sums_loaded_models(mme, models):
    empty = json.loads(mme.request("GET", "/memory").data)
    assert empty["budgetBytes"] is None
    assert empty["loadedModels"] == 0
    assert empty["usedBytes"] == 0
    for name in ("a", "b"):
        assert load(mme, name, models["echo"]).status == 200
    full = json.loads(mme.request("GET", "/memory").data)
    assert full["loadedModels"] == 2
    described = [json.loads(mme.request("GET", f"/models/{n}").data) for n in ("a", "b")]
    assert full["usedBytes"] > 0
    assert full["usedBytes"] == pytest.approx(sum(d["memoryBytes"] for d in described), rel=0.5)


def test_second_load_of_a_loading_model_is_409_and_the_first_succeeds(mme, tmp_path):
    folder = model_dir("held_load", tmp_path / "held")
    result: list = []
    first = threading.Thread(target=lambda: result.append(load(mme, "slow", folder)))
    first.start()
    wait_until((folder / "loading").exists)
    assert load(mme, "slow", folder).status == 409
    assert invoke(mme, "slow").status == 404  # not loaded yet
    (folder / "release").touch()
    first.join()
    assert result[0].status == 200
    assert invoke(mme, "slow", b"x", **{"Content-Type": "text/plain"}).data == b"slow"


def test_models_cycling_through_a_small_disk_cache_are_evicted_but_never_in_use(tmp_path):
    # Each model takes a bit over 400 KiB on disk: two fit in the 1 MB budget, three do not.
    archives = []
    for number in range(6):
        folder = model_dir("reads_its_files", tmp_path / "library" / f"m{number}")
        (folder / "name.txt").write_text(f"m{number}")
        (folder / "weights.bin").write_bytes(os.urandom(400 * 1024))
        archives.append(pack(folder, tmp_path / f"m{number}.tar.gz"))
    env = {"MOORAGE_MODEL_CACHE_MB": "1", "MOORAGE_MODEL_CACHE_MIN_FREE_MB": "0"}
    cache = ModelCache(tmp_path / "cache" / "models", DiskBudget())

    with running_instance(None, tmp_path, args=("--multi-model",), env=env) as mme:
        # Loaded first and kept loaded: the least recently used model all along, which
        # eviction must skip, since its worker reads its folder at every request.
        assert load(mme, "keeper", archives[0]).status == 200
        for _ in range(2):  # the second round finds each model evicted, and fetches it again
            for number in range(1, 6):
                assert load(mme, "current", archives[number]).status == 200
                assert answer(mme, "current") == f"m{number}".encode()
                assert answer(mme, "keeper") == b"m0"
                assert cache.used_bytes() <= 1024 * 1024
                assert mme.request("DELETE", "/models/current").status == 200


def answer(instance, name: str) -> bytes:
    response = invoke(instance, name, b"", **{"Content-Type": "text/plain"})
    assert response.status == 200, response.data
    return response.data
