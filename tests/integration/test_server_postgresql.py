"""``moorage server`` keeping its state in PostgreSQL: ``MOORAGE_DATABASE_URL`` or
``--database-url``."""

from tests.integration.instance import wait_until
from tests.integration.server import FAST_WAITER, running_server
from tests.integration.test_server_fleet import (
    create_config,
    create_endpoint,
    create_model,
    invoke,
    variant,
    wait_until_serving_iris,
    which_model,
)


def test_server_on_postgresql_killed_and_restarted_serves_again(
    tmp_path, artifacts, postgresql_url
):
    with running_server(tmp_path / "first", env={"MOORAGE_DATABASE_URL": postgresql_url}) as first:
        sm = first.client("sagemaker")
        config = create_config(sm, variant("AllTraffic", create_model(sm, artifacts["iris"])))
        endpoint = create_endpoint(sm, config)
        first.kill()
    assert not (tmp_path / "first" / "moorage.db").exists()
    # A fresh data dir: all the second server can know of the endpoint is in PostgreSQL.
    with running_server(tmp_path / "second", args=("--database-url", postgresql_url)) as second:
        status = wait_until_serving_iris(second, endpoint)
        assert status["EndpointStatus"] == "InService"
        assert status["EndpointConfigName"] == config


def test_servers_sharing_a_database_follow_each_others_changes(tmp_path, artifacts, postgresql_url):
    env = {"MOORAGE_DATABASE_URL": postgresql_url}
    with (
        running_server(tmp_path / "a", env=env) as a,
        running_server(tmp_path / "b", env=env) as b,
    ):
        sm_a, sm_b = a.client("sagemaker"), b.client("sagemaker")
        runtime_a, runtime_b = a.client("sagemaker-runtime"), b.client("sagemaker-runtime")
        iris = create_config(sm_a, variant("AllTraffic", create_model(sm_a, artifacts["iris"])))
        endpoint = create_endpoint(sm_a, iris)
        # Each server runs its own instances of every endpoint.
        wait_until_serving_iris(b, endpoint)

        echo = create_config(sm_b, variant("AllTraffic", create_model(sm_b, artifacts["echo"])))
        sm_b.update_endpoint(EndpointName=endpoint, EndpointConfigName=echo)
        sm_b.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)
        wait_until(lambda: which_model(invoke(runtime_a, endpoint)) == "echo")
        assert which_model(invoke(runtime_b, endpoint)) == "echo"

        sm_a.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}],
        )

        def instances_on_b() -> int:
            variants = sm_b.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
            return variants[0].get("CurrentInstanceCount", 0)

        wait_until(lambda: instances_on_b() == 2)

        sm_a.delete_endpoint(EndpointName=endpoint)
        sm_a.get_waiter("endpoint_deleted").wait(EndpointName=endpoint, WaiterConfig=FAST_WAITER)

        def b_stopped_serving() -> bool:
            try:
                invoke(runtime_b, endpoint)
            except runtime_b.exceptions.ValidationError:
                return True
            return False

        wait_until(b_stopped_serving)
