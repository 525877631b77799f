"""The multi-model /models API of one instance (spec/CONTAINER.md §5)."""

import json

import pytest

from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import running_instance

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
