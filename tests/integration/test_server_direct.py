"""Invocations go from the server straight to the built-in runtime's workers.

The instance's front stays the supervisor (it starts, watches and replaces workers), but a
request does not pass through it: these tests freeze the front with SIGSTOP and invoke anyway.
"""

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import read_answer, send_to_slow_reader, wait_until
from tests.integration.server import running_server
from tests.integration.test_server_fleet import create_config, create_endpoint, variant
from tests.integration.test_server_lifecycle import SKLEARN_IMAGE, unique

# Longer than the server's rescan interval for worker sockets (routing/workers.py).
RESCAN_S = 1.2


@pytest.fixture(scope="module")
def quick_runtime(server):
    """A client that gives up soon: a request stuck behind a frozen front fails the test."""
    return server.client("sagemaker-runtime", read_timeout=10)


def deploy(sm, fixture: str, folder: Path, workers: int = 1, **environment: str) -> str:
    """An endpoint serving the fixture model ``fixture``, built and packed under ``folder``."""
    archive = pack(model_dir(fixture, folder / fixture), folder / f"{fixture}.tar.gz")
    name = unique("m")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": f"file://{archive}",
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), **environment},
        },
    )
    return create_endpoint(sm, create_config(sm, variant("A", name)))


@pytest.fixture(scope="module")
def slow_endpoint(sm, tmp_path_factory) -> str:
    return deploy(sm, "slow", tmp_path_factory.mktemp("slow"))


@pytest.fixture(scope="module")
def multi_model_endpoint(sm, tmp_path_factory) -> str:
    prefix = tmp_path_factory.mktemp("prefix")
    pack(model_dir("slow", tmp_path_factory.mktemp("m") / "slow"), prefix / "slow.tar.gz")
    name = unique("m")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": str(prefix),
            "Mode": "MultiModel",
        },
    )
    return create_endpoint(sm, create_config(sm, variant("A", name)))


def worker_pid(runtime, endpoint: str, body: dict | None = None, **kwargs) -> int:
    """Invoke the slow model (``body``: its sleep and marker) and return the worker's pid."""
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        ContentType="application/json",
        Body=json.dumps(body or {"sleep": 0}).encode(),
        **kwargs,
    )
    return json.loads(answer["Body"].read())["pid"]


def front_of(worker: int) -> int:
    """The instance front that started ``worker`` (for multi-model, through its zygote)."""
    pid = worker
    while True:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if cmdline[1:3] == [b"-m", b"moorage.runtime"]:
            return pid


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_invocations_do_not_pass_through_the_front(quick_runtime, slow_endpoint):
    worker = worker_pid(quick_runtime, slow_endpoint)
    with frozen(front_of(worker)):
        assert {worker_pid(quick_runtime, slow_endpoint) for _ in range(20)} == {worker}


def test_worker_killed_mid_request_is_a_model_error_and_is_replaced(
    quick_runtime, slow_endpoint, tmp_path
):
    worker = worker_pid(quick_runtime, slow_endpoint)
    front = front_of(worker)
    marker = tmp_path / "started"
    errors: list[Exception] = []

    def slow_call() -> None:
        try:
            worker_pid(quick_runtime, slow_endpoint, {"sleep": 30, "marker": str(marker)})
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow_call)
    thread.start()
    wait_until(marker.exists)
    os.kill(worker, signal.SIGKILL)
    thread.join()
    (error,) = errors
    assert isinstance(error, quick_runtime.exceptions.ModelError)
    assert error.response["OriginalStatusCode"] == 500
    assert "exited before answering" in error.response["OriginalMessage"]

    replacement = wait_until(lambda: _other(quick_runtime, slow_endpoint, worker), timeout=60)
    # The server finds the replacement's socket as requests come, and stops using the front.
    worker_pid(quick_runtime, slow_endpoint)
    time.sleep(RESCAN_S)
    worker_pid(quick_runtime, slow_endpoint)
    time.sleep(0.3)
    with frozen(front):
        assert worker_pid(quick_runtime, slow_endpoint) == replacement


def test_multi_model_invocations_do_not_pass_through_the_front(quick_runtime, multi_model_endpoint):
    worker = worker_pid(quick_runtime, multi_model_endpoint, TargetModel="slow.tar.gz")
    # The first call after a load may go through the front while the server connects.
    worker_pid(quick_runtime, multi_model_endpoint, TargetModel="slow.tar.gz")
    time.sleep(0.3)
    with frozen(front_of(worker)):
        for _ in range(10):
            pid = worker_pid(quick_runtime, multi_model_endpoint, TargetModel="slow.tar.gz")
            assert pid == worker


def test_bodies_large_and_small_come_back_to_their_own_callers(quick_runtime, sm, tmp_path):
    endpoint = deploy(sm, "identity", tmp_path, workers=2)
    # Sizes around the worker's read buffer (256 KiB) and up to the 6 MB limit.
    sizes = [10, 100_000, 262_100, 262_200, 1_000_000, 5_000_000] * 3

    def call(number: int) -> bool:
        body = json.dumps({"n": number, "pad": "x" * sizes[number]}).encode()
        answer = quick_runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Body=body
        )
        return answer["Body"].read() == body

    with ThreadPoolExecutor(6) as pool:
        assert all(pool.map(call, range(len(sizes))))


@pytest.mark.parametrize("pad", [0, 300_000], ids=["small", "large"])
def test_the_late_answer_of_a_timed_out_call_is_dropped(tmp_path, pad):
    with running_server(tmp_path / "data", env={"MOORAGE_INVOCATION_TIMEOUT": "1"}) as server:
        sm, runtime = server.client("sagemaker"), server.client("sagemaker-runtime")
        endpoint = deploy(sm, "slow", tmp_path)
        with pytest.raises(runtime.exceptions.ModelError):
            call(runtime, endpoint, {"sleep": 1.5, "echo": "late", "pad": "x" * pad})
        # The next calls wait for the worker to finish the timed-out one, then get their own
        # answers, not the late one (a large body's slot stays lent until the late answer).
        bodies = [{"sleep": 0, "echo": f"next-{n}", "pad": "y" * pad} for n in range(4)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda body: call(runtime, endpoint, body), bodies))
        assert [a["echo"] for a in answers] == [f"next-{n}" for n in range(4)]


def test_large_bodies_travel_in_the_servers_shared_memory(server, quick_runtime, slow_endpoint):
    worker = worker_pid(quick_runtime, slow_endpoint)
    marker = os.urandom(16).hex()
    with frozen(front_of(worker)):
        echo = call(quick_runtime, slow_endpoint, {"echo": marker, "pad": "z" * 300_000})
    assert echo["echo"] == marker
    [arena] = Path("/dev/shm").glob(f"moorage-server-{server.process.pid}-*-/bodies")
    assert marker.encode() in arena.read_bytes()


def test_large_bodies_to_a_multi_model_endpoint(quick_runtime, multi_model_endpoint):
    bodies = [{"echo": f"m-{n}", "pad": "w" * 400_000} for n in range(12)]

    def invoke(body: dict) -> str:
        answer = quick_runtime.invoke_endpoint(
            EndpointName=multi_model_endpoint,
            TargetModel="slow.tar.gz",
            ContentType="application/json",
            Body=json.dumps(body).encode(),
        )
        return json.loads(answer["Body"].read())["echo"]

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(invoke, bodies)) == [f"m-{n}" for n in range(12)]


def test_a_worker_stuck_in_a_direct_call_is_replaced(tmp_path):
    # The front never sees this call; the worker's status file tells it the worker is stuck.
    with running_server(tmp_path / "data", env={"MOORAGE_INVOCATION_TIMEOUT": "1"}) as server:
        sm, runtime = server.client("sagemaker"), server.client("sagemaker-runtime")
        endpoint = deploy(sm, "slow", tmp_path, SAGEMAKER_MODEL_SERVER_TIMEOUT="1")
        stuck = worker_pid(runtime, endpoint)
        started = time.monotonic()
        with pytest.raises(runtime.exceptions.ModelError):
            call(runtime, endpoint, {"sleep": 600})
        replacement = wait_until(lambda: _other(runtime, endpoint, stuck), timeout=60)
        assert replacement != stuck
        assert time.monotonic() - started < 60
        assert (
            "is stuck; killing it"
            in Path(next((tmp_path / "data" / "logs").rglob("*.log"))).read_text()
        )


def call(runtime, endpoint: str, body: dict) -> dict:
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=json.dumps(body).encode()
    )
    return json.loads(answer["Body"].read())


def test_calls_past_the_direct_limit_queue_at_the_front(server, slow_endpoint):
    runtime = server.client("sagemaker-runtime", max_pool_connections=160, read_timeout=120)
    # More than MAX_IN_FLIGHT (100) on the only worker, each slow enough (50 ms) that the
    # client sends them all long before the worker is through the first hundred.
    count = 140
    front = front_of(worker_pid(runtime, slow_endpoint))
    with ThreadPoolExecutor(count) as pool:
        with frozen(front):
            calls = [
                pool.submit(call, runtime, slow_endpoint, {"sleep": 0.05, "echo": number})
                for number in range(count)
            ]
            wait_until(lambda: sum(c.done() for c in calls) >= 100, timeout=60)
            # Long enough for the rest to finish too (40 x 50 ms), had they gone straight to
            # the worker; they wait in the frozen front's queue.
            time.sleep(3)
            assert not all(c.done() for c in calls)
        assert [c.result()["echo"] for c in calls] == list(range(count))


def _other(runtime, endpoint: str, old: int) -> int | None:
    try:
        pid = worker_pid(runtime, endpoint)
    except runtime.exceptions.ModelError:
        return None
    return pid if pid != old else None


def test_answer_to_a_slow_reader_keeps_its_slot_until_written(server, quick_runtime, sm, tmp_path):
    """The server writes a large answer out from the slot the worker put it in; later calls
    do not overwrite it while a slow client still reads it, and the slot is lent again after."""
    endpoint = deploy(sm, "identity", tmp_path)
    body = b'"' + b"s" * 6_000_000 + b'"'
    others = [b'"' + bytes([97 + n]) * 6_000_000 + b'"' for n in range(4)]

    def invoke(other: bytes) -> bytes:
        answer = quick_runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Body=other
        )
        return answer["Body"].read()

    readers = []
    for _ in range(9):  # more than the server's slots, on connections kept open
        slow = send_to_slow_reader(server.url, f"/endpoints/{endpoint}/invocations", body)
        readers.append(slow)
        time.sleep(0.3)
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(invoke, others)) == others
        assert read_answer(slow, len(body)) == body
    marker = os.urandom(16).hex()
    assert json.loads(invoke(json.dumps({"m": marker, "pad": "q" * 300_000}).encode()))["m"]
    [arena] = Path("/dev/shm").glob(f"moorage-server-{server.process.pid}-*-/bodies")
    assert marker.encode() in arena.read_bytes()
    for slow in readers:
        slow.close()
