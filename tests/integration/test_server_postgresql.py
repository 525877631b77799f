"""``moorage server`` keeping its state in PostgreSQL: ``MOORAGE_DATABASE_URL`` or
``--database-url``."""

from tests.integration.server import running_server
from tests.integration.test_server_fleet import (
    create_config,
    create_endpoint,
    create_model,
    variant,
    wait_until_serving_iris,
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
