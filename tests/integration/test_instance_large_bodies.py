"""Large bodies between the front and its workers, in shared memory (runtime/arena.py)."""

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fixtures.builders import model_dir
from tests.integration.instance import (
    read_answer,
    running_instance,
    send_to_slow_reader,
    wait_until,
)

PAD = 300_000


def slow_body(sleep: float, echo: str, **extra: str) -> bytes:
    return json.dumps({"sleep": sleep, "echo": echo, **extra, "pad": "x" * PAD}).encode()


@pytest.fixture
def slow_instance(tmp_path):
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"}
    with running_instance(model_dir("slow", tmp_path / "m"), tmp_path, env=env) as instance:
        yield instance


def test_a_large_body_travels_in_shared_memory(tmp_path):
    with running_instance(model_dir("identity", tmp_path / "m"), tmp_path) as instance:
        assert_travels_in_shared_memory(instance)


def assert_travels_in_shared_memory(instance) -> None:
    marker = os.urandom(16).hex().encode()
    body = b'{"marker": "' + marker + b'", "pad": "' + b"y" * PAD + b'"}'
    assert instance.invoke(body).data == body
    [arena] = Path("/dev/shm").glob(f"moorage-workers-{instance.process.pid}-*-/bodies")
    assert marker in arena.read_bytes()


def test_late_answer_does_not_overwrite_the_next_large_request(slow_instance):
    """A timed-out request keeps its slot until the worker answers it, so the worker's late
    answer cannot land in the body of a request that came after it."""
    assert slow_instance.invoke(slow_body(3, "late")).status == 504
    bodies = [slow_body(0, f"next-{n}") for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(slow_instance.invoke, bodies))
    assert [json.loads(a.data)["echo"] for a in answers] == [f"next-{n}" for n in range(4)]


def test_worker_killed_mid_large_request_gives_its_slot_back(slow_instance, tmp_path):
    pid = json.loads(slow_instance.invoke(slow_body(0, "first")).data)["pid"]
    marker = tmp_path / "started"
    result: list = []
    call = threading.Thread(
        target=lambda: result.append(
            slow_instance.invoke(slow_body(10, "killed", marker=str(marker)))
        )
    )
    call.start()
    wait_until(marker.exists)
    os.kill(pid, signal.SIGKILL)
    call.join()
    assert result[0].status == 500
    # More requests than there are slots: every one still gets its own answer.
    for n in range(20):
        answer = wait_until(lambda n=n: _ok(slow_instance.invoke(slow_body(0, f"after-{n}"))))
        assert json.loads(answer.data)["echo"] == f"after-{n}"


def test_answers_larger_than_a_slot_still_arrive(tmp_path):
    """An answer that does not fit the request's slot goes over the socket."""
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "10"}
    folder = model_dir("identity", tmp_path / "m")
    (folder / "code" / "inference.py").write_text(
        "def model_fn(model_dir):\n    return None\n\n\n"
        "def transform_fn(model, body, content_type, accept):\n"
        "    return body * 8, accept\n"
    )
    with running_instance(folder, tmp_path, env=env) as instance:
        body = b'"' + b"z" * 1_000_000 + b'"'
        answer = instance.invoke(body)
        assert answer.status == 200
        assert answer.data == body * 8


def _ok(response):
    return response if response.status == 200 else None


def test_answer_to_a_slow_reader_is_kept_until_written(tmp_path):
    """The front writes a large answer from its slot; the slot is not lent again while a
    client that reads slowly has not received all of it, and is lent again once it has."""
    with running_instance(model_dir("identity", tmp_path / "m"), tmp_path) as instance:
        body = b'"' + b"s" * 6_000_000 + b'"'
        others = [b'"' + bytes([97 + n]) * 6_000_000 + b'"' for n in range(4)]
        # More rounds than there are slots, on connections kept open: a slot held after its
        # answer was written would show in the last check.
        readers = []
        for _ in range(9):
            slow = send_to_slow_reader(instance.url, "/invocations", body)
            readers.append(slow)
            time.sleep(0.3)  # answered, and most of the answer still waits in the front
            with ThreadPoolExecutor(2) as pool:
                assert [r.data for r in pool.map(instance.invoke, others)] == others
            assert read_answer(slow, len(body)) == body
        assert_travels_in_shared_memory(instance)
        for slow in readers:
            slow.close()
