"""The multi-model memory budget: 507 when a load would pass it, memory given back on unload."""

import json
from pathlib import Path

import pytest

from tests.fixtures.builders import model_dir
from tests.integration.instance import running_instance, wait_until


def load(instance, name, url):
    body = json.dumps({"model_name": name, "url": str(url)}).encode()
    return instance.request("POST", "/models", body, {"Content-Type": "application/json"})


def invoke(instance, name):
    return instance.request(
        "POST", f"/models/{name}/invoke", b"[[1.0, 2.0]]", {"Content-Type": "application/json"}
    )


def constant_model(dest: Path, value: int) -> Path:
    """A tiny scikit-learn model that predicts ``value`` for every row."""
    import joblib
    from sklearn.dummy import DummyRegressor

    model_dir("sklearn_default", dest)
    joblib.dump(
        DummyRegressor(strategy="constant", constant=value).fit([[0, 0]], [0]),
        dest / "model.joblib",
    )
    return dest


def instance_memory(front_pid: int) -> int:
    """PSS of every process of the instance: front, zygote and workers (its session)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != front_pid:
                continue
            rollup = (stat.parent / "smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        pss = next(line for line in rollup.splitlines() if line.startswith("Pss:"))
        total += int(pss.split()[1]) * 1024
    return total


@pytest.fixture(scope="module")
def constants(tmp_path_factory):
    root = tmp_path_factory.mktemp("constants")
    return [constant_model(root / f"m{i}", i) for i in range(30)]


def mme(tmp_path, **env):
    return running_instance(None, tmp_path, args=("--multi-model",), env=env)


def test_load_past_the_budget_is_507_until_a_model_is_unloaded(tmp_path, constants):
    # 1 MiB fits the first model's files but not a second model's measured memory.
    with mme(tmp_path, MOORAGE_MEMORY_BUDGET_MB="1") as instance:
        assert load(instance, "one", constants[1]).status == 200
        refused = load(instance, "two", constants[2])
        assert refused.status == 507
        assert "MOORAGE_MEMORY_BUDGET_MB" in json.loads(refused.data)["message"]
        assert instance.request("GET", "/models/two").status == 404
        memory = json.loads(instance.request("GET", "/memory").data)
        assert memory["budgetBytes"] == 2**20
        assert memory["loadedModels"] == 1
        assert instance.request("DELETE", "/models/one").status == 200
        assert load(instance, "two", constants[2]).status == 200
        assert json.loads(invoke(instance, "two").data) == [2.0]


def test_model_larger_than_the_budget_is_507(tmp_path):
    folder = model_dir("echo_context", tmp_path / "big")
    (folder / "weights.bin").write_bytes(b"\0" * (2 * 2**20))
    with mme(tmp_path, MOORAGE_MEMORY_BUDGET_MB="1") as instance:
        assert load(instance, "big", folder).status == 507


def test_unloading_gives_the_memory_back(tmp_path, constants):
    with mme(tmp_path) as instance:
        front = instance.process.pid
        # The zygote has started once the first load has been answered.
        assert load(instance, "warm", constants[0]).status == 200
        assert instance.request("DELETE", "/models/warm").status == 200
        wait_until(lambda: json.loads(instance.request("GET", "/memory").data)["usedBytes"] == 0)
        baseline = instance_memory(front)
        names = [f"m{i}" for i in range(1, 7)]
        for name, folder in zip(names, constants[1:], strict=False):
            assert load(instance, name, folder).status == 200
            assert invoke(instance, name).status == 200
        loaded = instance_memory(front)
        grown = loaded - baseline
        assert grown > 6 * 2**20  # each worker holds at least a few private MiB
        for name in names:
            assert instance.request("DELETE", f"/models/{name}").status == 200
        # Unload answers once the workers have exited; what remains is the front's own slack.
        after = instance_memory(front)
        assert after < baseline + grown / 4, (baseline, loaded, after)


def test_thirty_models_in_turn_under_a_budget_of_a_few(tmp_path, constants):
    with mme(tmp_path) as instance:
        assert load(instance, "probe", constants[0]).status == 200
        assert invoke(instance, "probe").status == 200
        one = json.loads(instance.request("GET", "/models/probe").data)["memoryBytes"]
    budget_mb = max(1, int(3.5 * one / 2**20))
    evictions = 0
    with mme(tmp_path, MOORAGE_MEMORY_BUDGET_MB=str(budget_mb)) as instance:
        loaded: list[str] = []  # least recently used first, as the platform keeps them
        for i, folder in enumerate(constants):
            name = f"m{i}"
            while (response := load(instance, name, folder)).status == 507:
                assert loaded, json.loads(response.data)
                assert instance.request("DELETE", f"/models/{loaded.pop(0)}").status == 200
                evictions += 1
            assert response.status == 200, response.data
            loaded.append(name)
            assert json.loads(invoke(instance, name).data) == [float(i)]
            # Answers stay right for the models still loaded.
            for other in loaded:
                assert json.loads(invoke(instance, other).data) == [float(other[1:])]
        assert evictions >= len(constants) - 10
        assert json.loads(instance.request("GET", "/memory").data)["loadedModels"] == len(loaded)
