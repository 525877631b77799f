"""SageMaker Python SDK (v2) paths that go through S3, as users run them: framework models whose
entry point the SDK packs and uploads, and multi-model endpoints.

The SDK talks to the moorage server and to a loopback S3 server; the moorage server fetches
what the SDK uploaded from that same S3 server.
"""

import io
import tarfile
import warnings

import boto3
import numpy as np
import pytest

with warnings.catch_warnings():
    # The v2 SDK warns that v3 exists; v2 is what most users' code still calls.
    warnings.simplefilter("ignore")
    import sagemaker
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.multidatamodel import MultiDataModel
    from sagemaker.predictor import Predictor
    from sagemaker.pytorch import PyTorchModel
    from sagemaker.serializers import CSVSerializer, JSONSerializer
    from sagemaker.sklearn import SKLearnModel

from tests.fixtures.builders import MODELS, model_dir, pack, save_iris_model
from tests.integration.server import CREDENTIALS, FAST_WAITER, REGION, running_server
from tests.integration.test_server_lifecycle import unique

pytestmark = pytest.mark.filterwarnings(
    "ignore::sagemaker.deprecations.SageMakerV2DeprecationWarning"
)

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "sdk-paths"
IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_endpoint):
    """One moorage server for the module, finding S3 where the SDK uploads."""
    env = {"AWS_ENDPOINT_URL_S3": s3_endpoint, "AWS_DEFAULT_REGION": REGION}
    env |= {name.upper(): value for name, value in CREDENTIALS.items()}
    with running_server(tmp_path_factory.mktemp("data"), env=env) as running:
        yield running


@pytest.fixture
def session(server, s3_endpoint, monkeypatch, tmp_path):
    """A sagemaker.Session on the moorage server; its S3 calls go to the loopback S3 server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    boto = boto3.Session(region_name=REGION, **CREDENTIALS)
    s3 = boto.client("s3")
    if BUCKET not in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    return sagemaker.Session(
        boto_session=boto,
        sagemaker_client=boto.client("sagemaker", endpoint_url=server.url),
        sagemaker_runtime_client=boto.client("sagemaker-runtime", endpoint_url=server.url),
        default_bucket=BUCKET,
    )


def upload(session, key: str, archive: bytes) -> str:
    session.boto_session.client("s3").put_object(Bucket=BUCKET, Key=key, Body=archive)
    return f"s3://{BUCKET}/{key}"


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wait_in_service(session, name: str) -> None:
    waiter = session.sagemaker_client.get_waiter("endpoint_in_service")
    waiter.wait(EndpointName=name, WaiterConfig=FAST_WAITER)


def test_a_pytorch_model_with_only_model_fn_gets_tensors_as_in_the_pytorch_image(session):
    # The PyTorch images decode into a tensor and call the module under no_grad; moorage's
    # generic defaults handed the module a numpy array, which torch.nn.Linear refuses.
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight[:] = torch.tensor([[1.0, 2.0]])
        net.bias[:] = 0.5
    weights = io.BytesIO()
    torch.save({f"fc.{key}": value for key, value in net.state_dict().items()}, weights)
    model_data = upload(session, "torch/model.tar.gz", tar_gz({"model.pth": weights.getvalue()}))
    name = unique("sdk-torch")
    predictor = PyTorchModel(
        model_data=model_data,
        entry_point="inference.py",
        source_dir=str(MODELS / "torch_module" / "code"),
        framework_version="2.1",
        py_version="py310",
        role=ROLE,
        sagemaker_session=session,
    ).deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False)
    wait_in_service(session, name)

    # PyTorchPredictor's default: NumPy both ways.
    assert predictor.predict(np.array([[1.0, 1.0]], dtype=np.float32)).tolist() == [[3.5]]
    predictor.serializer, predictor.deserializer = JSONSerializer(), JSONDeserializer()
    assert predictor.predict([[1.0, 1.0], [2.0, 0.0]]) == [[3.5], [2.5]]
    predictor.serializer = CSVSerializer()
    # One CSV row decodes to a 1-D array (np.genfromtxt), so the module sees one sample.
    assert predictor.predict([[0.0, 1.0]]) == [2.5]
    predictor.delete_endpoint()


def test_an_sklearn_model_with_its_entry_point_uploaded_by_the_sdk_predicts(session, tmp_path):
    save_iris_model(tmp_path / "model.joblib")
    model_data = upload(
        session,
        "iris/model.tar.gz",
        tar_gz({"model.joblib": (tmp_path / "model.joblib").read_bytes()}),
    )
    name = unique("sdk-sklearn")
    # The SDK uploads source_dir as sourcedir.tar.gz and names it in SAGEMAKER_SUBMIT_DIRECTORY.
    predictor = SKLearnModel(
        model_data=model_data,
        entry_point="inference.py",
        source_dir=str(MODELS / "sklearn_default" / "code"),
        framework_version="1.2-1",
        role=ROLE,
        sagemaker_session=session,
    ).deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False)
    wait_in_service(session, name)

    assert predictor.predict(np.array(IRIS)).tolist() == [0, 2]
    predictor.delete_endpoint()


def test_a_multi_data_model_serves_each_added_model_by_target_model(session, tmp_path):
    archive = pack(
        model_dir("sklearn_default", tmp_path / "iris", train_iris=True), tmp_path / "m.tar.gz"
    )
    image = sagemaker.image_uris.retrieve("sklearn", REGION, version="1.2-1")
    models = MultiDataModel(
        name=unique("sdk-mdm"),
        model_data_prefix=f"s3://{BUCKET}/{unique('mme')}/",
        image_uri=image,
        role=ROLE,
        sagemaker_session=session,
        predictor_cls=Predictor,
    )
    models.add_model(str(archive), "a.tar.gz")
    name = unique("sdk-mme")
    predictor = models.deploy(
        initial_instance_count=1,
        instance_type="ml.m5.large",
        endpoint_name=name,
        wait=False,
        serializer=CSVSerializer(),
        deserializer=JSONDeserializer(),
    )
    wait_in_service(session, name)
    assert predictor.predict(IRIS, target_model="a.tar.gz") == [0, 2]

    # A model added once the endpoint serves is found on its first invocation.
    models.add_model(str(archive), "later/b.tar.gz")
    assert sorted(models.list_models()) == ["a.tar.gz", "later/b.tar.gz"]
    assert predictor.predict(IRIS, target_model="later/b.tar.gz") == [0, 2]
    predictor.delete_endpoint()
