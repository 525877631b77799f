"""Batch transform through boto3 and the SageMaker SDK's Transformer: inputs in S3 and in local
folders, request shapes per SplitType/BatchStrategy, filters and joins, failed files, stops, and
jobs that survive a server restart."""

import gzip
import json
import subprocess
import sys
import warnings
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

with warnings.catch_warnings():
    # The v2 SDK warns that v3 exists; v2 is what most users' code still calls.
    warnings.simplefilter("ignore")
    import sagemaker
    from sagemaker.model import Model

from tests.integration.instance import wait_until
from tests.integration.server import CREDENTIALS, FAST_WAITER, REGION, running_server
from tests.integration.test_server_lifecycle import SKLEARN_IMAGE, unique

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": REGION,
}
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
IRIS_ROWS = ["5.1,3.5,1.4,0.2", "6.7,3.0,5.2,2.3", "5.9,3.0,4.2,1.5", "5.0,3.4,1.5,0.2"]
IRIS_CLASSES = ["0", "2", "1", "0"]

# A bring-your-own-container serve command that shows what batch transform sent it: each
# request is logged as a JSON line to $REQUEST_LOG; the answer is the body's lines upper-cased.
# A body holding "fail" is answered 500, one holding "sleep" after 60 s.
SERVE_SCRIPT = """#!{python}
import http.server, json, os, sys, threading, time

SHOWN = ("SAGEMAKER_BATCH", "SAGEMAKER_MAX", "JOB_")
lock = threading.Lock()
in_flight = [0]
parent = os.getppid()


def exit_with_parent():
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


threading.Thread(target=exit_with_parent, daemon=True).start()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/ping":
            return self._answer(200, b"")
        parameters = os.environ.get("EXECUTION_PARAMETERS")
        if self.path == "/execution-parameters" and parameters:
            return self._answer(200, parameters.encode())
        self._answer(404, b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with lock:
            in_flight[0] += 1
            seen = in_flight[0]
        try:
            if b"sleep" in body:
                time.sleep(60)
            if b"fail" in body:
                return self._answer(500, b"bad record: " + body[:40])
            with lock, open(os.environ["REQUEST_LOG"], "a") as log:
                log.write(json.dumps({{
                    "pid": os.getpid(),
                    "size": len(body),
                    "lines": body.decode().split("\\n"),
                    "content_type": self.headers.get("Content-Type"),
                    "accept": self.headers.get("Accept"),
                    "in_flight": seen,
                    "env": {{k: v for k, v in os.environ.items() if k.startswith(SHOWN)}},
                }}) + "\\n")
            time.sleep(0.05)
            self._answer(200, body.upper(), "text/csv")
        finally:
            with lock:
                in_flight[0] -= 1

    def _answer(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_endpoint):
    env = {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint, "MOORAGE_TRANSFORM_LEASE": "2"}
    with running_server(tmp_path_factory.mktemp("data"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION, **CREDENTIALS)
    client.create_bucket(Bucket="batch")
    return client


@pytest.fixture(scope="module")
def iris_model(sm, artifacts) -> str:
    name = unique("iris")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": artifacts["iris"],
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
        },
    )
    return name


@pytest.fixture(scope="module")
def byoc(tmp_path_factory):
    """The serve script, as an executable file."""
    root = tmp_path_factory.mktemp("byoc")
    serve = root / "serve"
    serve.write_text(SERVE_SCRIPT.format(python=sys.executable))
    serve.chmod(0o755)
    return serve


def byoc_model(sm, serve: Path, **environment: str) -> str:
    name = unique("byoc")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": f"file://{serve}", "Environment": environment},
    )
    return name


def requests_logged(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def create_job(sm, model: str, source: str, output: str, *, data_type="S3Prefix", **extra):
    name = unique("job")
    transform_input = {
        "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": source}},
        **extra.pop("TransformInput", {}),
    }
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput=transform_input,
        TransformOutput={"S3OutputPath": output, **extra.pop("TransformOutput", {})},
        TransformResources={
            "InstanceType": "ml.m5.large",
            "InstanceCount": extra.pop("InstanceCount", 1),
        },
        **extra,
    )
    return name


def wait_done(sm, name: str) -> dict:
    try:
        sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName=name, WaiterConfig=FAST_WAITER
        )
    except Exception:
        pass  # a Failed job ends the waiter with an error; the test looks at the status
    return sm.describe_transform_job(TransformJobName=name)


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_csv_lines_from_s3_through_the_model_with_boto3(server, sm, s3, iris_model):
    prefix = unique("in")
    s3.put_object(Bucket="batch", Key=f"{prefix}/a.csv", Body="\n".join(IRIS_ROWS[:2]) + "\n")
    # (A mini-batch of one row would reach scikit-learn as a 1-D array, which it refuses, as
    # in SageMaker's scikit-learn container.)
    s3.put_object(Bucket="batch", Key=f"{prefix}/d/b.csv", Body="\n".join(IRIS_ROWS[2:]))
    name = create_job(
        sm,
        iris_model,
        f"s3://batch/{prefix}",
        f"s3://batch/out-{prefix}",
        TransformInput={"ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"Accept": "text/csv", "AssembleWith": "Line"},
        BatchStrategy="MultiRecord",
        Tags=[{"Key": "team", "Value": "ml"}],
    )
    described = wait_done(sm, name)
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")

    def output(key: str) -> str:
        return s3.get_object(Bucket="batch", Key=f"out-{prefix}/{key}")["Body"].read().decode()

    assert output("a.csv.out").split() == IRIS_CLASSES[:2]
    assert output("d/b.csv.out").split() == IRIS_CLASSES[2:]
    assert described["TransformJobArn"] == (
        f"arn:aws:sagemaker:{REGION}:000000000000:transform-job/{name.lower()}"
    )
    assert described["ModelName"] == iris_model
    assert described["TransformInput"]["SplitType"] == "Line"
    assert described["TransformStartTime"] <= described["TransformEndTime"]
    assert described["CreationTime"] <= described["TransformStartTime"]
    shown = subprocess.run(
        [sys.executable, "-m", "moorage", "logs", name, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "[TransformJob/" in shown  # the instance's log stream
    tags = sm.list_tags(ResourceArn=described["TransformJobArn"])["Tags"]
    assert tags == [{"Key": "team", "Value": "ml"}]

    listed = sm.list_transform_jobs(NameContains=name, StatusEquals="Completed")
    [summary] = listed["TransformJobSummaries"]
    assert summary["TransformJobName"] == name
    assert summary["TransformJobStatus"] == "Completed"
    assert "TransformEndTime" in summary
    assert not sm.list_transform_jobs(NameContains=name, StatusEquals="Failed")[
        "TransformJobSummaries"
    ]


def test_filters_join_and_gzip_from_a_local_folder(sm, iris_model, tmp_path):
    rows = [f"{i},{row}" for i, row in enumerate(IRIS_ROWS)]
    write(tmp_path / "in", "rows.csv.gz", gzip.compress("\n".join(rows).encode()))
    name = create_job(
        sm,
        iris_model,
        (tmp_path / "in").as_uri(),
        (tmp_path / "out").as_uri(),
        TransformInput={"ContentType": "text/csv", "SplitType": "Line", "CompressionType": "Gzip"},
        TransformOutput={"Accept": "text/csv", "AssembleWith": "Line"},
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    described = wait_done(sm, name)
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert described["DataProcessing"]["OutputFilter"] == "$[0,-1]"
    output = (tmp_path / "out" / "rows.csv.gz.out").read_text()
    assert output.splitlines() == [f"{i},{c}" for i, c in enumerate(IRIS_CLASSES)]


def test_request_shapes_environment_and_instances(sm, byoc, tmp_path):
    log = tmp_path / "requests.jsonl"
    parameters = {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD"}
    model = byoc_model(
        sm, byoc, REQUEST_LOG=str(log), EXECUTION_PARAMETERS=json.dumps(parameters), JOB_X="model"
    )
    lines = [f"r{i}" for i in range(12)]
    write(tmp_path / "in", "one.txt", "\n".join(lines[:6]))
    write(tmp_path / "in", "two.txt", "\n".join(lines[6:]))
    name = create_job(
        sm,
        model,
        (tmp_path / "in").as_uri(),
        (tmp_path / "out").as_uri(),
        TransformInput={"ContentType": "text/plain", "SplitType": "Line"},
        TransformOutput={"Accept": "text/csv", "AssembleWith": "Line"},
        Environment={"JOB_X": "job", "JOB_Y": "y"},
        InstanceCount=2,
    )
    assert wait_done(sm, name)["TransformJobStatus"] == "Completed"
    seen = requests_logged(log)
    # SingleRecord, from /execution-parameters: one line per request.
    assert sorted(line for r in seen for line in r["lines"]) == sorted(lines)
    assert all(len(r["lines"]) == 1 for r in seen)
    assert {(r["content_type"], r["accept"]) for r in seen} == {("text/plain", "text/csv")}
    assert max(r["in_flight"] for r in seen) <= 3
    # One object per instance; the job's Environment over the model's.
    pids = {r["pid"] for r in seen}
    assert len(pids) == 2
    assert {r["pid"] for r in seen if r["lines"][0] in lines[:6]} != pids
    assert seen[0]["env"] == {"SAGEMAKER_BATCH": "true", "JOB_X": "job", "JOB_Y": "y"}
    out = tmp_path / "out"
    assert (out / "one.txt.out").read_text() == "".join(f"{x.upper()}\n" for x in lines[:6])
    assert (out / "two.txt.out").read_text() == "".join(f"{x.upper()}\n" for x in lines[6:])

    # MultiRecord, the job's values over the container's: lines packed up to MaxPayloadInMB.
    log.unlink()
    big = [f"{i:07d}" + "x" * 99_992 for i in range(25)]  # 100 KB lines, 2.5 MB in all
    write(tmp_path / "big", "big.txt", "\n".join(big))
    name = create_job(
        sm,
        model,
        (tmp_path / "big" / "big.txt").as_uri(),
        (tmp_path / "out-big").as_uri(),
        TransformInput={"SplitType": "Line"},
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
    )
    assert wait_done(sm, name)["TransformJobStatus"] == "Completed"
    seen = requests_logged(log)
    # Up to 3 requests at once (from /execution-parameters), so logged in any order.
    assert sorted(line for r in seen for line in r["lines"]) == big
    assert sorted(len(r["lines"]) for r in seen) == [5, 10, 10]  # 100,000-byte lines, 1 MiB
    assert all(r["size"] <= 1024 * 1024 for r in seen)
    assert seen[0]["env"]["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "1"
    assert seen[0]["env"]["SAGEMAKER_BATCH_STRATEGY"] == "MULTI_RECORD"
    # AssembleWith None: the answers back to back, as they came.
    answers = ["\n".join(big[at : at + 10]).upper() for at in (0, 10, 20)]
    assert (tmp_path / "out-big" / "big.txt.out").read_text() == "".join(answers)


def test_a_failed_file_fails_the_job_and_the_others_are_written(sm, byoc, tmp_path):
    model = byoc_model(sm, byoc, REQUEST_LOG=str(tmp_path / "log"))
    write(tmp_path / "in", "good.txt", "fine\nalso fine")
    write(tmp_path / "in", "bad.txt", "fine\nfail here")
    manifest = [{"prefix": (tmp_path / "in").as_uri() + "/"}, "good.txt", "bad.txt"]
    write(tmp_path, "manifest.json", json.dumps(manifest))
    name = create_job(
        sm,
        model,
        (tmp_path / "manifest.json").as_uri(),
        (tmp_path / "out").as_uri(),
        data_type="ManifestFile",
        TransformInput={"SplitType": "Line"},
        BatchStrategy="SingleRecord",
        ModelClientConfig={"InvocationsMaxRetries": 1, "InvocationsTimeoutInSeconds": 30},
    )
    described = wait_done(sm, name)
    assert described["TransformJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert (tmp_path / "in" / "bad.txt").as_uri() in reason
    assert "500" in reason
    assert "bad record: fail here" in reason
    assert "after 2 attempts" in reason
    assert (tmp_path / "out" / "good.txt.out").read_text() == "FINEALSO FINE"  # AssembleWith None
    assert not (tmp_path / "out" / "bad.txt.out").exists()


def test_stop_leaves_no_output_and_no_instances(server, sm, byoc, tmp_path):
    model = byoc_model(sm, byoc, REQUEST_LOG=str(tmp_path / "log"))
    write(tmp_path / "in", "a.txt", "quick")
    write(tmp_path / "in", "b.txt", "sleep")
    name = create_job(
        sm, model, (tmp_path / "in").as_uri(), (tmp_path / "out").as_uri(), InstanceCount=2
    )
    logs = server.data_dir / "logs" / name
    wait_until(lambda: (tmp_path / "log").exists(), timeout=30)  # a.txt was answered
    assert len(list(logs.glob("*/*.log"))) == 2
    sm.stop_transform_job(TransformJobName=name)
    assert sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    described = wait_done(sm, name)
    assert described["TransformJobStatus"] == "Stopped"
    assert not (tmp_path / "out").exists()
    assert not _serve_processes(byoc)
    with pytest.raises(ClientError) as error:
        sm.stop_transform_job(TransformJobName=name)
    assert error.value.response["Error"]["Code"] == "ValidationException"


def _serve_processes(serve: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(serve).encode() == part for part in command):
            found.append(int(entry.name))
    return found


def test_errors_are_sagemakers(sm, iris_model, tmp_path):
    def code_and_message(call, **kwargs) -> tuple[str, str]:
        with pytest.raises(ClientError) as error:
            call(**kwargs)
        return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]

    code, message = code_and_message(sm.describe_transform_job, TransformJobName="nope")
    assert (code, message) == ("ValidationException", "Could not find requested job with name nope")
    code, message = code_and_message(
        create_job, sm=sm, model="no-such-model", source=tmp_path.as_uri(), output="/tmp/x"
    )
    assert code == "ValidationException"
    assert "Could not find model" in message
    code, message = code_and_message(
        create_job,
        sm=sm,
        model=iris_model,
        source=tmp_path.as_uri(),
        output="/tmp/x",
        DataProcessing={"InputFilter": "$[["},
    )
    assert (code, "InputFilter") == ("ValidationException", message.split()[0])
    code, message = code_and_message(
        create_job,
        sm=sm,
        model=iris_model,
        source=tmp_path.as_uri(),
        output="/tmp/x",
        MaxConcurrentTransforms=20,
        MaxPayloadInMB=6,
    )
    assert code == "ValidationException"
    assert "100" in message


def test_the_sagemaker_sdk_transformer(server, s3, artifacts, tmp_path):
    boto = boto3.Session(region_name=REGION, **CREDENTIALS)
    session = sagemaker.Session(
        boto_session=boto,
        sagemaker_client=boto.client("sagemaker", endpoint_url=server.url),
        sagemaker_runtime_client=boto.client("sagemaker-runtime", endpoint_url=server.url),
        default_bucket="batch",
    )
    prefix = unique("sdk")
    s3.put_object(Bucket="batch", Key=f"{prefix}/in/iris.csv", Body="\n".join(IRIS_ROWS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Model(
            image_uri=SKLEARN_IMAGE,
            model_data=artifacts["iris"],
            role=ROLE,
            sagemaker_session=session,
            name=unique("sdk-model"),
        )
        transformer = model.transformer(
            instance_count=1,
            instance_type="ml.m5.large",
            output_path=f"s3://batch/{prefix}/out",
            accept="text/csv",
            assemble_with="Line",
            strategy="MultiRecord",
        )
        transformer.transform(
            f"s3://batch/{prefix}/in", content_type="text/csv", split_type="Line", wait=False
        )
        described = session.wait_for_transform_job(transformer.latest_transform_job.name, poll=0.2)
    assert described["TransformJobStatus"] == "Completed"
    body = s3.get_object(Bucket="batch", Key=f"{prefix}/out/iris.csv.out")["Body"].read()
    assert body.decode().split() == IRIS_CLASSES


def test_a_job_in_progress_runs_again_after_a_restart(byoc, tmp_path_factory):
    root = tmp_path_factory.mktemp("restart")
    data, log = root / "data", root / "requests.jsonl"
    write(root / "in", "a.txt", "first")
    write(root / "in", "b.txt", "sleep")
    env = {"MOORAGE_TRANSFORM_LEASE": "2"}
    with running_server(data, env=env) as first:
        sm = first.client("sagemaker")
        model = byoc_model(sm, byoc, REQUEST_LOG=str(log))
        name = create_job(sm, model, (root / "in").as_uri(), (root / "out").as_uri())
        wait_until(log.exists, timeout=30)
        first.kill()
    # The instance dies with its server; then the input is changed so the rerun can finish.
    wait_until(lambda: not _serve_processes(byoc), timeout=15)
    write(root / "in", "b.txt", "second")
    with running_server(data, env=env) as second:
        sm = second.client("sagemaker")
        described = wait_done(sm, name)
        assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert [r["lines"] for r in requests_logged(log)] == [["first"], ["first"], ["second"]]
    assert (root / "out" / "b.txt.out").read_text() == "SECOND"


def test_list_pages_sorts_and_filters_jobs(sm, iris_model, tmp_path):
    # Jobs whose input folder is empty fail at once, without starting instances.
    stem = unique("listed")
    names = [f"{stem}-{letter}" for letter in "cab"]
    for name in names:
        transform_input = {"S3DataType": "S3Prefix", "S3Uri": (tmp_path / "empty").as_uri()}
        sm.create_transform_job(
            TransformJobName=name,
            ModelName=iris_model,
            TransformInput={"DataSource": {"S3DataSource": transform_input}},
            TransformOutput={"S3OutputPath": (tmp_path / "out").as_uri()},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        )
    for name in names:
        described = wait_done(sm, name)
        assert described["TransformJobStatus"] == "Failed"
        assert described["FailureReason"].startswith("No input objects found at file://")
    pages = sm.get_paginator("list_transform_jobs").paginate(
        NameContains=stem,
        SortBy="Name",
        SortOrder="Ascending",
        StatusEquals="Failed",
        PaginationConfig={"PageSize": 1},
    )
    listed = [s["TransformJobName"] for page in pages for s in page["TransformJobSummaries"]]
    assert listed == sorted(names)
    newest_first = sm.list_transform_jobs(NameContains=stem)["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in newest_first] == names[::-1]
    assert not sm.list_transform_jobs(NameContains=stem, StatusEquals="InProgress")[
        "TransformJobSummaries"
    ]
