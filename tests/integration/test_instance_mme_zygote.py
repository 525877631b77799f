"""Workers forked from the zygote: they answer, die and are replaced as spawned ones did."""

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from tests.fixtures.builders import model_dir
from tests.integration.instance import running_instance, wait_until

ROWS = json.dumps([[5.1, 3.5, 1.4, 0.2]]).encode()


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: fields start after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def is_zygote(pid: int) -> bool:
    try:
        return b"moorage.runtime.zygote" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def load(instance, name, url):
    body = json.dumps({"model_name": name, "url": str(url)}).encode()
    return instance.request("POST", "/models", body, {"Content-Type": "application/json"})


def invoke(instance, name, payload: dict):
    body = json.dumps(payload).encode()
    return instance.request(
        "POST", f"/models/{name}/invoke", body, {"Content-Type": "application/json"}
    )


def worker_pid(instance, name) -> int:
    return json.loads(invoke(instance, name, {"sleep": 0}).data)["pid"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "slow": model_dir("slow", root / "slow"),
        "iris": model_dir("sklearn_default", root / "iris", train_iris=True),
    }


@pytest.fixture
def mme(tmp_path):
    with running_instance(None, tmp_path, args=("--multi-model",)) as instance:
        yield instance


def _in_background(call) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


def test_multi_model_workers_are_forked_by_the_zygote(mme, models):
    assert load(mme, "iris", models["iris"]).status == 200
    assert load(mme, "slow", models["slow"]).status == 200
    pids = [int(w["pid"]) for w in json.loads(mme.request("GET", "/models/iris").data)["workers"]]
    zygote = parent_of(pids[0])
    assert zygote != mme.process.pid
    assert is_zygote(zygote)
    assert parent_of(zygote) == mme.process.pid
    assert parent_of(worker_pid(mme, "slow")) == zygote
    response = mme.request(
        "POST", "/models/iris/invoke", ROWS, {"Content-Type": "application/json"}
    )
    assert json.loads(response.data) == [0]


def test_single_model_workers_are_forked_by_the_zygote_when_asked(tmp_path, models):
    env = {"MOORAGE_ZYGOTE": "on"}
    with running_instance(models["slow"], tmp_path, env=env) as instance:
        pid = json.loads(instance.invoke(b'{"sleep": 0}').data)["pid"]
        assert is_zygote(parent_of(pid))


def test_without_the_zygote_workers_are_spawned(tmp_path, models):
    env = {"MOORAGE_ZYGOTE": "off"}
    with running_instance(None, tmp_path, args=("--multi-model",), env=env) as instance:
        assert load(instance, "slow", models["slow"]).status == 200
        assert parent_of(worker_pid(instance, "slow")) == instance.process.pid


def test_killed_forked_worker_answers_sigkill_and_is_replaced(mme, models, tmp_path):
    assert load(mme, "slow", models["slow"]).status == 200
    pid = worker_pid(mme, "slow")
    marker = tmp_path / "started"
    thread, result = _in_background(
        lambda: invoke(mme, "slow", {"sleep": 10, "marker": str(marker)})
    )
    wait_until(marker.exists)
    os.kill(pid, signal.SIGKILL)
    thread.join()
    assert result[0].status == 500
    assert b"killed by SIGKILL" in result[0].data
    replaced = wait_until(lambda: _ok(invoke(mme, "slow", {"sleep": 0})))
    new_pid = json.loads(replaced.data)["pid"]
    assert new_pid != pid
    assert is_zygote(parent_of(new_pid))


def test_killed_zygote_is_restarted_and_old_workers_keep_serving(mme, models, tmp_path):
    assert load(mme, "old", models["slow"]).status == 200
    orphan = worker_pid(mme, "old")
    zygote = parent_of(orphan)
    os.kill(zygote, signal.SIGKILL)

    loads = iter(range(1000))

    def forked_by_a_new_zygote() -> bool:
        # A load during the restart may be spawned instead; a later one is forked again.
        name = f"new-{next(loads)}"
        assert load(mme, name, models["slow"]).status == 200
        parent = parent_of(worker_pid(mme, name))
        return parent != zygote and is_zygote(parent)

    wait_until(forked_by_a_new_zygote)
    # The orphan still serves; when it dies, its request is answered and it is replaced.
    assert worker_pid(mme, "old") == orphan
    marker = tmp_path / "started"
    thread, result = _in_background(
        lambda: invoke(mme, "old", {"sleep": 10, "marker": str(marker)})
    )
    wait_until(marker.exists)
    os.kill(orphan, signal.SIGKILL)
    thread.join()
    assert result[0].status == 500
    assert b"lost with the zygote" in result[0].data
    assert wait_until(lambda: _ok(invoke(mme, "old", {"sleep": 0}))).status == 200


def test_workers_draw_different_random_numbers(mme, tmp_path):
    folder = tmp_path / "rand"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(
        "import numpy\n\n"
        "def model_fn(model_dir):\n    return numpy.random.random()\n\n"
        "def transform_fn(model, body, content_type, accept):\n"
        "    return repr(model), 'text/plain'\n"
    )
    draws = set()
    for name in ("r1", "r2", "r3"):
        assert load(mme, name, folder).status == 200
        draws.add(mme.request("POST", f"/models/{name}/invoke", b"x").data)
    assert len(draws) == 3


def _ok(response):
    return response if response.status == 200 else None
