"""Inference pipelines (CreateModel with Containers): Serial and Direct, through boto3."""

import json
import os
import signal

import pytest
from botocore.exceptions import ClientError

from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import wait_until
from tests.integration.server import running_server
from tests.integration.test_server_fleet import (
    _instance_pids,
    create_config,
    create_endpoint,
    variant,
)
from tests.integration.test_server_lifecycle import SKLEARN_IMAGE, unique


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pipeline")
    return {
        name: f"file://{pack(model_dir(f'pipeline_{name}', root / name), root / f'{name}.tgz')}"
        for name in ("double", "total")
    }


def create_pipeline(sm, archives, mode: str | None = None, hostnames=(None, None)) -> str:
    name = unique("pipe")
    containers = []
    for stage, hostname in zip(("double", "total"), hostnames, strict=True):
        container = {"Image": SKLEARN_IMAGE, "ModelDataUrl": archives[stage]}
        if hostname:
            container["ContainerHostname"] = hostname
        containers.append(container)
    extra = {"InferenceExecutionConfig": {"Mode": mode}} if mode else {}
    sm.create_model(ModelName=name, Containers=containers, **extra)
    return name


def test_a_serial_pipeline_passes_each_answer_to_the_next_container(sm, runtime, archives):
    model = create_pipeline(sm, archives)
    endpoint = create_endpoint(sm, create_config(sm, variant("A", model)))
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=b"[1, 2, 3]"
    )
    assert json.loads(answer["Body"].read()) == {"total": 12.0, "content_type": "text/csv"}
    assert answer["ContentType"] == "application/json"
    described = sm.describe_model(ModelName=model)
    assert [c["ModelDataUrl"] for c in described["Containers"]] == [
        archives["double"],
        archives["total"],
    ]


def test_a_failing_container_is_a_model_error(sm, runtime, archives):
    endpoint = create_endpoint(sm, create_config(sm, variant("A", create_pipeline(sm, archives))))
    for body, message in ((b"[-1]", "cannot be doubled"), (b"[600]", "too large")):
        with pytest.raises(ClientError) as caught:
            runtime.invoke_endpoint(
                EndpointName=endpoint, ContentType="application/json", Body=body
            )
        error = caught.value.response
        assert error["Error"]["Code"] == "ModelError"
        assert error["OriginalStatusCode"] == 500
        assert message in error["OriginalMessage"]


def test_a_direct_pipeline_invokes_the_container_named(sm, runtime, archives):
    model = create_pipeline(sm, archives, "Direct", ("doubler", "summer"))
    endpoint = create_endpoint(sm, create_config(sm, variant("A", model)))
    doubled = runtime.invoke_endpoint(
        EndpointName=endpoint,
        TargetContainerHostname="doubler",
        ContentType="application/json",
        Body=b"[1, 2]",
    )
    assert doubled["Body"].read() == b"2,4"
    assert doubled["ContentType"] == "text/csv"
    summed = runtime.invoke_endpoint(
        EndpointName=endpoint, TargetContainerHostname="summer", ContentType="text/csv", Body=b"1,2"
    )
    assert json.loads(summed["Body"].read())["total"] == 3.0
    for extra, wording in (
        ({}, "send TargetContainerHostname"),
        ({"TargetContainerHostname": "x"}, "no container"),
    ):
        with pytest.raises(ClientError, match=wording) as caught:
            runtime.invoke_endpoint(
                EndpointName=endpoint, ContentType="text/csv", Body=b"1", **extra
            )
        assert caught.value.response["Error"]["Code"] == "ValidationError"


def test_pipelines_are_checked_when_created(sm, archives):
    with pytest.raises(ClientError, match="every container must") as caught:
        create_pipeline(sm, archives, hostnames=("one", None))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError, match="unique"):
        create_pipeline(sm, archives, hostnames=("same", "same"))


def test_one_container_killed_replaces_the_whole_instance(tmp_path, archives):
    with running_server(tmp_path / "data") as server:
        sm, runtime = server.client("sagemaker"), server.client("sagemaker-runtime")
        endpoint = create_endpoint(
            sm, create_config(sm, variant("A", create_pipeline(sm, archives)))
        )
        before = set(_instance_pids(server.process.pid))
        assert len(before) == 2
        os.kill(max(before), signal.SIGKILL)

        def replaced() -> bool:
            now = set(_instance_pids(server.process.pid))
            return len(now) == 2 and not now & before

        wait_until(replaced, timeout=60)

        def answers() -> dict | None:
            try:
                answer = runtime.invoke_endpoint(
                    EndpointName=endpoint, ContentType="application/json", Body=b"[5]"
                )
            except ClientError:
                return None
            return json.loads(answer["Body"].read())

        assert wait_until(answers, timeout=30) == {"total": 10.0, "content_type": "text/csv"}
