"""RoutingConfig through boto3: which instance of a variant a request reaches."""

import json
import threading

import pytest
from botocore.exceptions import ClientError

from tests.fixtures.builders import model_dir, pack
from tests.integration.instance import wait_until
from tests.integration.test_server_fleet import create_config, create_endpoint, create_model
from tests.integration.test_server_fleet import variant as instance_variant

PREFIX_AWARE = {
    "RoutingStrategy": "PREFIX_AWARE",
    "PrefixAwareRoutingConfig": {"PrefixLength": 1024, "ConcurrencyThreshold": 1},
}


@pytest.fixture(scope="module")
def slow_model(sm, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("slow")
    archive = pack(model_dir("slow", folder / "slow"), folder / "slow.tar.gz")
    return create_model(sm, f"file://{archive}")


def routed(model: str, routing: dict, count: int = 3) -> dict:
    return {**instance_variant("A", model, count=count), "RoutingConfig": routing}


def answer_of(runtime, endpoint: str, prompt: str, **request) -> dict:
    # The prompt comes first, so the body's first PrefixLength bytes are the prompt's.
    body = json.dumps({"prompt": prompt.ljust(1100), **request}).encode()
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=body
    )
    return json.loads(answer["Body"].read())


def test_prefix_aware_routing_keeps_a_prefix_on_one_instance(sm, runtime, slow_model, tmp_path):
    config = create_config(sm, routed(slow_model, PREFIX_AWARE))
    endpoint = create_endpoint(sm, config)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["ProductionVariants"][0]["RoutingConfig"] == PREFIX_AWARE
    described_config = sm.describe_endpoint_config(EndpointConfigName=config)
    assert described_config["ProductionVariants"][0]["RoutingConfig"] == PREFIX_AWARE

    homes = {}
    for n in range(12):
        pids = {answer_of(runtime, endpoint, f"system prompt {n}")["pid"] for _ in range(4)}
        assert len(pids) == 1, f"prompt {n} reached {len(pids)} instances"
        homes[n] = pids.pop()
    assert len(set(homes.values())) > 1

    # An instance at ConcurrencyThreshold (1) passes the prefix on.
    marker = tmp_path / "started"
    held = threading.Thread(
        target=answer_of, args=(runtime, endpoint, "system prompt 0"), kwargs={
            "sleep": 2, "marker": str(marker)
        }
    )  # fmt: skip
    held.start()
    try:
        wait_until(marker.exists, timeout=10)
        assert answer_of(runtime, endpoint, "system prompt 0")["pid"] != homes[0]
    finally:
        held.join()
    assert answer_of(runtime, endpoint, "system prompt 0")["pid"] == homes[0]

    with pytest.raises(ClientError, match="PrefixAwareId must be") as caught:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"{}", PrefixAwareId="x" * 65)
    assert caught.value.response["Error"]["Code"] == "ValidationError"


def test_random_and_kv_aware_routing_serve(sm, runtime, slow_model):
    for strategy in ("RANDOM", "KV_AWARE"):
        config = create_config(sm, routed(slow_model, {"RoutingStrategy": strategy}, count=2))
        endpoint = create_endpoint(sm, config)
        pids = {answer_of(runtime, endpoint, f"prompt {n}")["pid"] for n in range(30)}
        assert len(pids) == 2, strategy


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"RoutingStrategy": "PREFIX_AWARE"}, "give RoutingConfig.PrefixAwareRoutingConfig"),
        (
            {**PREFIX_AWARE, "RoutingStrategy": "RANDOM"},
            "applies only to RoutingStrategy PREFIX_AWARE",
        ),
        (
            {"RoutingStrategy": "PREFIX_AWARE", "PrefixAwareRoutingConfig": {"PrefixLength": 2048}},
            "needs both PrefixLength and ConcurrencyThreshold",
        ),
    ],
)
def test_routing_configs_that_do_not_hold_together_are_refused(sm, slow_model, routing, message):
    with pytest.raises(ClientError, match=message) as caught:
        create_config(sm, routed(slow_model, routing))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
