"""A server given keys answers only requests signed with one of them (SigV4), as AWS does."""

import subprocess
import sys
import urllib.request

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.integration.server import running_server
from tests.integration.test_server_direct import deploy

TEAM_A = {"aws_access_key_id": "AKIDTEAMA", "aws_secret_access_key": "secret-a"}
TEAM_B = {"aws_access_key_id": "AKIDTEAMB", "aws_secret_access_key": "secret-b"}


@pytest.fixture(scope="module")
def credentials_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "credentials"
    path.write_text(
        "".join(
            f"[{name}]\naws_access_key_id = {key['aws_access_key_id']}\n"
            f"aws_secret_access_key = {key['aws_secret_access_key']}\n"
            for name, key in (("team-a", TEAM_A), ("team-b", TEAM_B))
        )
    )
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, credentials_file):
    data_dir = tmp_path_factory.mktemp("data")
    with running_server(data_dir, args=("--credentials-file", str(credentials_file))) as running:
        yield running


@pytest.fixture(scope="module")
def endpoint(server, tmp_path_factory):
    return deploy(server.client(credentials=TEAM_A), "identity", tmp_path_factory.mktemp("m"))


def error_code(call) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]


@pytest.mark.parametrize("key", [TEAM_A, TEAM_B], ids=["team-a", "team-b"])
@pytest.mark.parametrize("size", [10, 1_000_000])
def test_every_configured_key_may_invoke_small_and_large_bodies(server, endpoint, key, size):
    runtime = server.client("sagemaker-runtime", credentials=key)
    body = b'"' + b"s" * size + b'"'
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=body
    )
    assert answer["Body"].read() == body
    assert (
        server.client(credentials=key).describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
        == "InService"
    )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"credentials": {**TEAM_A, "aws_secret_access_key": "secret-b"}},
            (403, "InvalidSignatureException"),
        ),
        (
            {"credentials": {**TEAM_A, "aws_access_key_id": "AKIDNOBODY"}},
            (403, "UnrecognizedClientException"),
        ),
        ({"credentials": TEAM_A, "region": "eu-west-1"}, (403, "InvalidSignatureException")),
        ({"signature_version": UNSIGNED}, (403, "MissingAuthenticationTokenException")),
    ],
    ids=["wrong-secret", "unknown-key", "other-region", "unsigned"],
)
def test_requests_without_a_valid_signature_are_refused_on_both_apis(
    server, endpoint, options, expected
):
    sm = server.client(**options)
    runtime = server.client("sagemaker-runtime", **options)
    assert error_code(lambda: sm.list_endpoints()) == expected
    assert (
        error_code(
            lambda: runtime.invoke_endpoint(
                EndpointName=endpoint, Body=b'"x"', ContentType="application/json"
            )
        )
        == expected
    )


def test_a_refused_request_changes_nothing(server):
    intruder = server.client(credentials={**TEAM_B, "aws_secret_access_key": "guess"})
    code = error_code(lambda: intruder.delete_endpoint_config(EndpointConfigName="nope"))
    assert code == (403, "InvalidSignatureException")
    listed = server.client(credentials=TEAM_B).list_endpoints()["Endpoints"]
    assert all(e["EndpointStatus"] == "InService" for e in listed)


def test_the_server_says_at_start_how_to_sign(server, credentials_file):
    assert f"must be signed with a key from {credentials_file}" in server.log_text()
    assert "--aws-sigv4 'aws:amz:us-east-1:sagemaker'" in server.log_text()


def test_health_and_metrics_stay_open_for_probes_and_scrapers(server, endpoint):
    for path in ("/healthz", "/ping", "/metrics"):
        with urllib.request.urlopen(server.url + path, timeout=10) as answer:
            assert answer.status == 200


def refused_start(*args: str) -> str:
    """Start ``moorage server`` with ``args``, expecting it to refuse; its stderr."""
    command = [sys.executable, "-m", "moorage", "server", "--port", "0", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    return done.stderr


def test_without_keys_the_server_refuses_to_bind_beyond_loopback(tmp_path):
    assert "--credentials-file" in refused_start("--host", "0.0.0.0", "--data-dir", str(tmp_path))
    assert not (tmp_path / "moorage.db").exists()


def test_an_unreadable_credentials_file_stops_the_server_at_start(tmp_path):
    missing = str(tmp_path / "missing")
    stderr = refused_start("--data-dir", str(tmp_path), "--credentials-file", missing)
    assert "cannot read the credentials file" in stderr
