"""The web console (``/console``): what runs, its numbers and its logs, as a browser sees them."""

import re
import urllib.error
import urllib.request

import pytest

from tests.integration.server import FAST_WAITER, running_server
from tests.integration.test_server_batch_transform import create_job, wait_done, write
from tests.integration.test_server_direct import deploy
from tests.integration.test_server_fleet import create_config, variant
from tests.integration.test_server_lifecycle import SKLEARN_IMAGE, unique

LOG_LINE = "moorage instance listening on"


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def page(server, path: str) -> str:
    status, text = fetch(server.url + path)
    assert status == 200, text
    return text


@pytest.fixture(scope="module")
def endpoint(sm, tmp_path_factory) -> str:
    return deploy(sm, "identity", tmp_path_factory.mktemp("identity"))


def test_the_overview_shows_endpoints_models_and_configs(server, sm, endpoint):
    described = sm.describe_endpoint(EndpointName=endpoint)
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model = config["ProductionVariants"][0]["ModelName"]

    text = page(server, "/console")

    assert f'<a href="/console/endpoints/{endpoint}">{endpoint}</a>' in text
    row = text[text.index(f">{endpoint}</a>") :].split("</tr>")[0]
    assert "InService" in row
    assert "real-time" in row
    assert "<b>A</b> · weight 1.0 · instances 1/1" in row
    assert described["EndpointConfigName"] in row
    assert f"<td>{model}</td><td>SingleModel</td><td>{SKLEARN_IMAGE}</td>" in text
    assert page(server, "/console/") == text


def test_an_endpoints_page_shows_its_invocations_and_instance_logs(server, runtime, endpoint):
    for _ in range(3):
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="application/json", Body=b"1")

    text = page(server, f"/console/endpoints/{endpoint}")

    assert "InService" in text
    assert "&quot;EndpointStatus&quot;: &quot;InService&quot;" in text  # DescribeEndpoint's
    # Variant, Invocations, 4XX, 5XX, model errors.
    assert "<td><b>A</b></td><td>3</td><td>0</td><td>0</td><td>0</td>" in text
    # CPU and memory of the instance: numbers, not the placeholder.
    assert "CPU / memory per instance" in text
    assert re.search(r"<td>\d+\.\d % / \d+\.\d %</td>", text)
    assert "<h3>A/" in text
    assert LOG_LINE in text


def test_a_transform_jobs_page_shows_it_and_its_instance_logs(server, sm, endpoint, tmp_path):
    model = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    )["ProductionVariants"][0]["ModelName"]
    write(tmp_path / "in", "a.json", "[1, 2]")
    job = create_job(sm, model, (tmp_path / "in").as_uri(), (tmp_path / "out").as_uri())
    assert wait_done(sm, job)["TransformJobStatus"] == "Completed"

    overview = page(server, "/console")
    assert f'<a href="/console/transform-jobs/{job}">{job}</a>' in overview
    text = page(server, f"/console/transform-jobs/{job}")
    assert "Completed" in text
    assert (tmp_path / "in").as_uri() in text
    assert LOG_LINE in text


def test_values_from_users_are_escaped(server, sm, tmp_path):
    hostile = f"file://{tmp_path}/<script>alert(1)</script>/model.tar.gz"
    model = unique("m")
    sm.create_model(
        ModelName=model, PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": hostile}
    )
    name = unique("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=create_config(sm, variant("A", model)))
    with pytest.raises(Exception, match="Failed"):
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    reason = sm.describe_endpoint(EndpointName=name)["FailureReason"]
    assert "<script>" in reason

    for text in (page(server, "/console"), page(server, f"/console/endpoints/{name}")):
        assert "<script>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    overview = page(server, "/console")
    assert re.search(r"<span class=\"bad\">Failed</span></td><td>[^<]*&lt;script&gt;", overview)


@pytest.mark.parametrize(
    "path", ["/console/endpoints/nobody", "/console/transform-jobs/nothing", "/console/else"]
)
def test_an_unknown_page_is_a_404_page(server, path):
    status, text = fetch(server.url + path)
    assert status == 404
    assert "<title>Not found" in text


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A credentials file: the server given it checks signatures."""
    path = tmp_path_factory.mktemp("keys") / "credentials"
    path.write_text("[team]\naws_access_key_id = AKIDTEAM\naws_secret_access_key = secret\n")
    return path


@pytest.mark.parametrize(
    ("signed", "setting", "expected"),
    [(True, None, 403), (True, "on", 200), (False, "off", 403)],
    ids=["signed-auto", "signed-on", "loopback-off"],
)
def test_the_console_is_refused_where_a_browser_cannot_sign_unless_enabled(
    tmp_path, keys, signed, setting, expected
):
    args = ("--credentials-file", str(keys)) if signed else ()
    env = {"MOORAGE_CONSOLE": setting} if setting else {}
    with running_server(tmp_path / "data", env=env, args=args) as running:
        status, text = fetch(running.url + "/console")
        output = running.log_text()
    assert status == expected, text
    if expected == 403:
        assert "MOORAGE_CONSOLE" in text
        assert "The console is off" in output
    else:
        assert "Endpoints and jobs" in text
        assert f"Console: {running.url}/console" in output
