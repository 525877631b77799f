"""The SageMaker Python SDK, unchanged, against a moorage server: deploy, predict, update, delete.

Only the clients' endpoint_url differs from what a user runs against AWS.
"""

import warnings

import boto3
import numpy as np
import pytest

with warnings.catch_warnings():
    # The v2 SDK warns that v3 exists; v2 is what most users' code still calls.
    warnings.simplefilter("ignore")
    import sagemaker
    from sagemaker.deserializers import JSONDeserializer, NumpyDeserializer
    from sagemaker.exceptions import UnexpectedStatusException
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer, NumpySerializer
    from sagemaker.serverless import ServerlessInferenceConfig

from tests.integration.server import CREDENTIALS, FAST_WAITER, REGION
from tests.integration.test_server_lifecycle import unique

pytestmark = pytest.mark.filterwarnings(
    "ignore::sagemaker.deprecations.SageMakerV2DeprecationWarning"
)

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def session(server):
    boto = boto3.Session(region_name=REGION, **CREDENTIALS)
    return sagemaker.Session(
        boto_session=boto,
        sagemaker_client=boto.client("sagemaker", endpoint_url=server.url),
        sagemaker_runtime_client=boto.client("sagemaker-runtime", endpoint_url=server.url),
    )


def sklearn_model(session, model_data: str) -> Model:
    image = sagemaker.image_uris.retrieve("sklearn", REGION, version="1.2-1")
    return Model(
        image_uri=image,
        model_data=model_data,
        role=ROLE,
        sagemaker_session=session,
        predictor_cls=Predictor,
    )


def deploy_iris(session, artifacts, name: str, **where) -> Predictor:
    """Deploy the iris model as the SDK does, wait, and check it answers."""
    predictor = sklearn_model(session, artifacts["iris"]).deploy(
        endpoint_name=name,
        serializer=CSVSerializer(),
        deserializer=JSONDeserializer(),
        wait=False,
        **where,
    )
    # The SDK's own wait, polled faster than its 30 s default.
    session.wait_for_endpoint(name, poll=0.2)
    assert predictor.predict(IRIS) == [0, 2]
    return predictor


def test_deploy_predict_update_and_delete_as_with_sagemaker(session, artifacts):
    name = unique("sdk")
    predictor = deploy_iris(
        session, artifacts, name, initial_instance_count=1, instance_type="ml.m5.large"
    )

    numpy_predictor = Predictor(
        name, session, serializer=NumpySerializer(), deserializer=NumpyDeserializer()
    )
    assert numpy_predictor.predict(np.array(IRIS)).tolist() == [0, 2]

    predictor.update_endpoint(initial_instance_count=2, instance_type="ml.c5.xlarge", wait=False)
    session.wait_for_endpoint(name, poll=0.2)
    variant = session.sagemaker_client.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentInstanceCount"] == 2
    assert predictor.predict(IRIS, target_variant=variant["VariantName"]) == [0, 2]

    # moorage has no monitoring schedules or lineage contexts: both are empty, not errors.
    assert predictor.list_monitors() == []
    assert predictor.endpoint_context() is None

    models = predictor._get_model_names()
    predictor.delete_model()
    predictor.delete_endpoint()
    client = session.sagemaker_client
    client.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    for model in models:
        with pytest.raises(client.exceptions.ClientError, match="Could not find model"):
            client.describe_model(ModelName=model)


def test_a_model_that_fails_to_load_fails_the_sdks_wait_with_its_reason(session, artifacts):
    name = unique("sdk-broken")
    sklearn_model(session, artifacts["broken"]).deploy(
        initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False
    )
    with pytest.raises(UnexpectedStatusException) as caught:
        session.wait_for_endpoint(name, poll=0.2)
    assert "Failed" in str(caught.value)
    assert "model_fn" in str(caught.value) or "Error" in str(caught.value)


def test_a_serverless_deployment_serves_as_with_sagemaker(session, artifacts):
    name = unique("sdk-serverless")
    serverless = ServerlessInferenceConfig(memory_size_in_mb=2048, max_concurrency=2)
    predictor = deploy_iris(session, artifacts, name, serverless_inference_config=serverless)
    variant = session.sagemaker_client.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"]["MaxConcurrency"] == 2
    predictor.delete_endpoint()
