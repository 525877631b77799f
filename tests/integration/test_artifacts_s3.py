import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from moorage.artifacts import materialize
from moorage.errors import ArtifactError
from tests.fixtures.builders import pack

BUCKET = "models"


@pytest.fixture
def s3(
    monkeypatch: pytest.MonkeyPatch,
    s3_endpoint: str,
    tmp_path: Path,
) -> Iterator[Any]:
    """A client for setting up objects; materialize finds the server through the env alone."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # Keep the developer's ~/.aws out of it.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    client = boto3.session.Session().client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _tar_gz(folder: Path, files: dict[str, bytes]) -> bytes:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return pack(folder, folder.with_suffix(".tar.gz")).read_bytes()


def _put(s3: Any, key: str, data: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)


def test_materialize_unpacks_an_s3_archive_once(s3, tmp_path):
    archive = _tar_gz(
        tmp_path / "model", {"model.bin": b"weights", "code/inference.py": b"x = 1\n"}
    )
    _put(s3, "churn/model.tar.gz", archive)
    (tmp_path / "local.tar.gz").write_bytes(archive)

    model = materialize(f"s3://{BUCKET}/churn/model.tar.gz", tmp_path / "cache")

    assert (model / "model.bin").read_bytes() == b"weights"
    assert (model / "code" / "inference.py").read_bytes() == b"x = 1\n"
    assert materialize(f"s3://{BUCKET}/churn/model.tar.gz", tmp_path / "cache") == model
    # Keyed by the archive's bytes: the same archive from disk lands in the same folder.
    assert materialize(str(tmp_path / "local.tar.gz"), tmp_path / "cache") == model
    assert sorted(path.name for path in (tmp_path / "cache").iterdir() if path.is_dir()) == [
        model.name
    ]


def test_materialize_fetches_every_object_under_an_s3_prefix(s3, tmp_path):
    _put(s3, "churn/v1/model.bin", b"weights")
    _put(s3, "churn/v1/code/inference.py", b"x = 1\n")
    _put(s3, "churn/v10/other.bin", b"not this one")

    model = materialize(f"s3://{BUCKET}/churn/v1/", tmp_path / "cache")

    assert sorted(str(path.relative_to(model)) for path in model.rglob("*")) == [
        "code",
        "code/inference.py",
        "model.bin",
    ]
    assert (model / "model.bin").read_bytes() == b"weights"
    assert materialize(f"s3://{BUCKET}/churn/v1/", tmp_path / "cache") == model


def test_materialize_refetches_an_s3_prefix_when_an_object_changes(s3, tmp_path):
    _put(s3, "churn/v1/model.bin", b"weights")
    before = materialize(f"s3://{BUCKET}/churn/v1/", tmp_path / "cache")
    _put(s3, "churn/v1/model.bin", b"retrained")

    after = materialize(f"s3://{BUCKET}/churn/v1/", tmp_path / "cache")

    assert after != before
    assert (after / "model.bin").read_bytes() == b"retrained"


def test_materialize_places_a_single_s3_object_as_one_file(s3, tmp_path):
    _put(s3, "churn/v1/model.joblib", b"weights")
    _put(s3, "churn/v1/unrelated.bin", b"x")

    model = materialize(f"s3://{BUCKET}/churn/v1/model.joblib", tmp_path / "cache")

    assert [path.name for path in model.iterdir()] == ["model.joblib"]
    assert (model / "model.joblib").read_bytes() == b"weights"


def test_materialize_keeps_hash_and_question_marks_in_s3_keys(s3, tmp_path):
    _put(s3, "churn/model#2?.joblib", b"weights")

    model = materialize(f"s3://{BUCKET}/churn/model#2?.joblib", tmp_path / "cache")

    assert (model / "model#2?.joblib").read_bytes() == b"weights"


@pytest.mark.parametrize(
    "url",
    [
        f"s3://{BUCKET}/missing/model.tar.gz",
        f"s3://{BUCKET}/missing/model.joblib",
        f"s3://{BUCKET}/missing/",
        "s3://no-such-bucket/model.tar.gz",
        "s3://no-such-bucket/models/",
    ],
)
def test_materialize_errors_naming_a_missing_s3_url(s3, tmp_path, url):
    with pytest.raises(ArtifactError, match=url.replace(".", r"\.")):
        materialize(url, tmp_path / "cache")


@pytest.mark.parametrize(
    ("keys", "offender"),
    [
        pytest.param(["bad/model.bin", "bad/folder/"], "bad/folder/", id="folder-marker"),
        pytest.param(["bad/a//model.bin"], "bad/a//model.bin", id="empty-segment"),
        pytest.param(["bad/a/./model.bin"], "bad/a/./model.bin", id="dot-segment"),
        pytest.param(["bad/a/ /model.bin"], "bad/a/ /model.bin", id="blank-segment"),
        pytest.param(["bad/" + "x" * 256], "bad/" + "x" * 256, id="long-segment"),
        pytest.param(["bad/w", "bad/w/x"], "w", id="file-folder-clash"),
    ],
)
def test_materialize_refuses_unsafe_keys_under_an_s3_prefix(s3, tmp_path, keys, offender):
    for key in keys:
        _put(s3, key, b"" if key.endswith("/") else b"data")

    with pytest.raises(ArtifactError, match="Refusing") as refused:
        materialize(f"s3://{BUCKET}/bad/", tmp_path / "cache")

    assert repr(offender) in str(refused.value)
    assert [path for path in Path(tmp_path / "cache").iterdir() if path.is_dir()] == []


def test_materialize_refuses_an_s3_archive_over_the_size_limit(s3, tmp_path):
    _put(s3, "big.tar.gz", _tar_gz(tmp_path / "big", {"model.bin": os.urandom(4096)}))

    with pytest.raises(ArtifactError, match="over the limit of 1000"):
        materialize(f"s3://{BUCKET}/big.tar.gz", tmp_path / "cache", max_archive_bytes=1000)
