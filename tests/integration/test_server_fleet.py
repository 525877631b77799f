"""Fleets behind ``moorage server``: routing, updates in place, crashes and restarts."""

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import wait_until
from tests.integration.server import FAST_WAITER, running_server
from tests.integration.test_server_lifecycle import SKLEARN_IMAGE, unique

ROWS = json.dumps([[5.1, 3.5, 1.4, 0.2]]).encode()


def create_model(sm, url: str, image: str = SKLEARN_IMAGE) -> str:
    name = unique("m")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": url,
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
        },
    )
    return name


def variant(name: str, model: str, weight: float = 1.0, count: int = 1) -> dict:
    return {
        "VariantName": name,
        "ModelName": model,
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": count,
        "InitialVariantWeight": weight,
    }


def create_config(sm, *variants) -> str:
    name = unique("cfg")
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=list(variants))
    return name


def create_endpoint(sm, config: str) -> str:
    name = unique("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    return name


def invoke(runtime, endpoint: str, **kwargs):
    return runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=ROWS, **kwargs
    )


def which_model(answer) -> str:
    """iris answers a class list; the echo model answers a JSON object."""
    payload = json.loads(answer["Body"].read())
    return "echo" if isinstance(payload, dict) else "iris"


def wait_until_serving_iris(server, endpoint: str) -> dict:
    """Wait until a (restarted) server answers ``endpoint`` with the iris model; describe it."""
    runtime = server.client("sagemaker-runtime")

    def serves() -> bool:
        try:
            return which_model(invoke(runtime, endpoint)) == "iris"
        except (runtime.exceptions.ServiceUnavailable, runtime.exceptions.ValidationError):
            return False

    wait_until(serves, timeout=60)
    return server.client("sagemaker").describe_endpoint(EndpointName=endpoint)


def test_weighted_split_and_target_variant(sm, runtime, artifacts):
    iris, echo = create_model(sm, artifacts["iris"]), create_model(sm, artifacts["echo"])
    config = create_config(sm, variant("A", iris, 0.7), variant("B", echo, 0.3))
    endpoint = create_endpoint(sm, config)
    counts = Counter(invoke(runtime, endpoint)["InvokedProductionVariant"] for _ in range(400))
    # Binomial(400, 0.7): mean 280, sd 9.2; 5 sd either side.
    assert 234 <= counts["A"] <= 326, counts
    assert counts["A"] + counts["B"] == 400
    targeted = {invoke(runtime, endpoint, TargetVariant="B")["InvokedProductionVariant"]}
    assert targeted == {"B"}
    with pytest.raises(runtime.exceptions.ValidationError):
        invoke(runtime, endpoint, TargetVariant="C")


def test_update_weights_and_capacities(sm, runtime, artifacts):
    iris, echo = create_model(sm, artifacts["iris"]), create_model(sm, artifacts["echo"])
    endpoint = create_endpoint(sm, create_config(sm, variant("A", iris), variant("B", echo)))
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "A", "DesiredWeight": 1.0, "DesiredInstanceCount": 2},
            {"VariantName": "B", "DesiredWeight": 0.0},
        ],
    )
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "Updating"
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    variants = {
        v["VariantName"]: v
        for v in sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    }
    assert variants["A"]["CurrentInstanceCount"] == 2
    assert variants["B"]["CurrentWeight"] == 0.0
    assert {invoke(runtime, endpoint)["InvokedProductionVariant"] for _ in range(30)} == {"A"}


class Stream:
    """Invokes an endpoint back to back in a thread, recording each answer or failure."""

    def __init__(self, runtime, endpoint: str) -> None:
        self.runtime, self.endpoint = runtime, endpoint
        self.answers: list[str] = []
        self.failures: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(which_model(invoke(self.runtime, self.endpoint)))
            except Exception as exc:  # every failure counts against the update
                self.failures.append(exc)

    def __enter__(self) -> "Stream":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def test_update_endpoint_is_blue_green_with_zero_failures(sm, runtime, artifacts):
    blue = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"])))
    green = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["echo"])))
    endpoint = create_endpoint(sm, blue)
    with Stream(runtime, endpoint) as stream:
        wait_until(lambda: len(stream.answers) > 20)
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=green)
        sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
        settled = len(stream.answers)
        wait_until(lambda: len(stream.answers) > settled + 20)
    assert stream.failures == []
    assert stream.answers[0] == "iris"
    assert set(stream.answers[settled:]) == {"echo"}
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointConfigName"] == green
    assert "FailureReason" not in described


@pytest.mark.parametrize(
    "routing",
    [
        {
            "Type": "CANARY",
            "WaitIntervalInSeconds": 3,
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
        },
        {
            "Type": "LINEAR",
            "WaitIntervalInSeconds": 2,
            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
        },
    ],
    ids=["canary", "linear"],
)
def test_canary_and_linear_updates_shift_traffic_in_steps(sm, runtime, artifacts, routing):
    blue = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"])))
    green = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["echo"])))
    endpoint = create_endpoint(sm, blue)
    sm.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=green,
        DeploymentConfig={"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing}},
    )
    # While the first step bakes, both fleets answer.
    seen: Counter = Counter()

    def both_fleets_answer() -> bool:
        seen.update(which_model(invoke(runtime, endpoint)) for _ in range(20))
        return seen["iris"] > 0 and seen["echo"] > 0

    wait_until(both_fleets_answer, timeout=30)
    during = sm.describe_endpoint(EndpointName=endpoint)
    assert during["EndpointStatus"] == "Updating"
    [pending] = during["PendingDeploymentSummary"]["ProductionVariants"]
    assert pending["VariantStatus"][0]["Status"] == "Baking"
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    assert {which_model(invoke(runtime, endpoint)) for _ in range(20)} == {"echo"}
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert (
        described["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"][
            "Type"
        ]
        == routing["Type"]
    )


def test_failing_update_keeps_the_old_fleet(sm, runtime, artifacts):
    blue = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"])))
    broken = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["broken"])))
    endpoint = create_endpoint(sm, blue)
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=broken)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointConfigName"] == blue
    assert "bad weights" in described["FailureReason"]
    assert which_model(invoke(runtime, endpoint)) == "iris"


def _instance_pids(server_pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == server_pid and b"moorage.runtime" in cmdline:
            pids.append(int(entry.name))
    return pids


def test_killed_instance_is_replaced_and_endpoint_stays_in_service(server, sm, runtime, artifacts):
    endpoint = create_endpoint(
        sm, create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"])))
    )
    before = set(_instance_pids(server.process.pid))
    assert before
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: set(_instance_pids(server.process.pid)) - before, timeout=30)

    def serves() -> bool:
        try:
            return which_model(invoke(runtime, endpoint)) == "iris"
        except runtime.exceptions.ServiceUnavailable:
            return False
        except runtime.exceptions.ModelError as error:
            # A call that reached a worker of the killed instance as it was exiting.
            if "exited before answering" not in error.response["OriginalMessage"]:
                raise
            return False

    wait_until(serves, timeout=30)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1


def test_server_killed_and_restarted_serves_again(tmp_path, artifacts):
    data = tmp_path / "data"
    with running_server(data) as first:
        sm = first.client("sagemaker")
        model = create_model(sm, artifacts["iris"])
        config = create_config(sm, variant("AllTraffic", model))
        endpoint = create_endpoint(sm, config)
        # SageMaker lets both go while the endpoint serves; it must not notice, restarts too.
        sm.delete_endpoint_config(EndpointConfigName=config)
        sm.delete_model(ModelName=model)
        orphans = _instance_pids(first.process.pid)
        first.kill()
    # Instances die with the server that started them.
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in orphans), timeout=15)
    with running_server(data) as second:
        status = wait_until_serving_iris(second, endpoint)
        assert status["EndpointStatus"] == "InService"


SERVE_SCRIPT = '''#!{python}
"""A bring-your-own-container serve command: the container contract on SAGEMAKER_BIND_TO_PORT."""
import http.server, os, sys

assert sys.argv[1:] == ["serve"], sys.argv


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self._answer(200 if self.path == "/ping" else 404, b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(200, b"byoc:" + body.upper(), "text/plain")

    def _answer(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def test_bring_your_own_serve_command(sm, runtime, tmp_path):
    serve = tmp_path / "serve"
    serve.write_text(SERVE_SCRIPT.format(python=sys.executable))
    serve.chmod(0o755)
    model = create_model(sm, f"file://{tmp_path}/unused.tar.gz", image=f"file://{serve}")
    endpoint = create_endpoint(sm, create_config(sm, variant("AllTraffic", model)))
    answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/plain", Body=b"hi")
    assert answer["Body"].read() == b"byoc:HI"
    assert answer["ContentType"] == "text/plain"


def test_logs_command_shows_instance_output(server, sm, artifacts):
    endpoint = create_endpoint(
        sm, create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"])))
    )
    shown = subprocess.run(
        [sys.executable, "-m", "moorage", "logs", endpoint, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "[AllTraffic/" in shown
    assert "loaded the model" in shown


def test_update_can_retain_variant_properties(sm, runtime, artifacts):
    iris = create_model(sm, artifacts["iris"])
    endpoint = create_endpoint(sm, create_config(sm, variant("A", iris)))
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredInstanceCount": 2}],
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    echo = create_model(sm, artifacts["echo"])
    sm.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=create_config(sm, variant("A", echo, weight=1.0, count=1)),
        RetainAllVariantProperties=True,
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
    [summary] = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    assert summary["DesiredInstanceCount"] == 2
    assert summary["CurrentInstanceCount"] == 2
    assert which_model(invoke(runtime, endpoint)) == "echo"


def test_list_endpoints_filters_by_status(sm, artifacts):
    broken = create_config(sm, variant("A", create_model(sm, artifacts["broken"])))
    name = unique("failing")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=broken)
    wait_until(
        lambda: sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Failed", timeout=60
    )
    failed = sm.list_endpoints(StatusEquals="Failed", NameContains="failing", MaxResults=100)
    assert name in [e["EndpointName"] for e in failed["Endpoints"]]
    serving = sm.list_endpoints(StatusEquals="InService", NameContains="failing")
    assert name not in [e["EndpointName"] for e in serving["Endpoints"]]


def test_slow_model_times_out_as_model_error(tmp_path):
    slow = f"file://{pack(model_dir('slow', tmp_path / 'slow'), tmp_path / 'slow.tar.gz')}"
    with running_server(tmp_path / "data", env={"MOORAGE_INVOCATION_TIMEOUT": "1"}) as server:
        sm, runtime = server.client("sagemaker"), server.client("sagemaker-runtime")
        endpoint = create_endpoint(sm, create_config(sm, variant("A", create_model(sm, slow))))
        with pytest.raises(runtime.exceptions.ModelError) as caught:
            runtime.invoke_endpoint(
                EndpointName=endpoint, ContentType="application/json", Body=b'{"sleep": 3}'
            )
        error = caught.value.response
        assert error["OriginalStatusCode"] == 0
        assert "timed out while waiting for a response from container" in error["Error"]["Message"]


def test_sigterm_stops_the_server_and_its_instances(tmp_path, artifacts):
    with running_server(tmp_path / "data") as server:
        sm = server.client("sagemaker")
        create_endpoint(sm, create_config(sm, variant("A", create_model(sm, artifacts["iris"]))))
        instances = _instance_pids(server.process.pid)
        assert instances
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0
    assert not [pid for pid in instances if Path(f"/proc/{pid}").exists()]
