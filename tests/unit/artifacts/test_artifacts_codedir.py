import pytest

from moorage.artifacts import materialize, resolve_code_dir
from moorage.errors import ArtifactError
from tests.unit.artifacts.artifact_tarballs import write_model

SCRIPT = b"def model_fn(model_dir):\n    return model_dir\n"


def test_code_dir_is_code_inside_the_archive(tmp_path):
    archive = write_model(tmp_path / "m.tar.gz", {"model.bin": b"w", "code/inference.py": SCRIPT})
    model = materialize(str(archive), tmp_path / "cache")

    assert resolve_code_dir(model, None, tmp_path / "cache") == model / "code"


def test_code_dir_is_the_archive_root_without_a_code_folder(tmp_path):
    archive = write_model(tmp_path / "m.tar.gz", {"model.bin": b"w", "inference.py": SCRIPT})
    model = materialize(str(archive), tmp_path / "cache")

    assert resolve_code_dir(model, "", tmp_path / "cache") == model


def test_code_dir_is_the_submit_directory_folder(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "inference.py").write_bytes(SCRIPT)
    (tmp_path / "model" / "code").mkdir(parents=True)

    code = resolve_code_dir(tmp_path / "model", str(source), tmp_path / "cache")

    assert code == source.resolve()


@pytest.mark.parametrize("as_url", [False, True])
def test_code_dir_is_the_unpacked_submit_directory_tarball(tmp_path, as_url):
    archive = write_model(tmp_path / "sourcedir.tar.gz", {"inference.py": SCRIPT})
    submit = archive.as_uri() if as_url else str(archive)

    code = resolve_code_dir(tmp_path / "model", submit, tmp_path / "cache")

    assert (code / "inference.py").read_bytes() == SCRIPT
    assert code.parent == tmp_path / "cache"


def test_code_dir_errors_when_the_submit_directory_is_missing(tmp_path):
    with pytest.raises(ArtifactError, match=r"SAGEMAKER_SUBMIT_DIRECTORY=.*nowhere"):
        resolve_code_dir(tmp_path, str(tmp_path / "nowhere"), tmp_path / "cache")


def test_code_dir_maps_the_sdk_container_path_to_the_model_folder(tmp_path):
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    sdk_path = str(tmp_path / "absent" / "opt" / "ml" / "model" / "code")

    assert resolve_code_dir(model, sdk_path, tmp_path / "cache") == model / "code"
    assert resolve_code_dir(model, sdk_path + "/", tmp_path / "cache") == model / "code"
