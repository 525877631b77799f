"""Where the entry script (SAGEMAKER_PROGRAM) lives, as the SageMaker toolkits decide."""

from pathlib import Path, PurePosixPath

from moorage.artifacts.fetch import is_url, materialize
from moorage.errors import ArtifactError

# What the SageMaker Python SDK writes into SAGEMAKER_SUBMIT_DIRECTORY after repacking the
# model with its entry point: a path inside the container, where the model is /opt/ml/model.
_SDK_CODE_DIR_SUFFIX = ("model", "code")


def resolve_code_dir(model_dir: Path, submit_directory: str | None, cache_dir: Path) -> Path:
    """The folder holding the entry script and its modules.

    ``submit_directory`` is SAGEMAKER_SUBMIT_DIRECTORY: when set it may name a folder, an
    archive or an s3:// / file:// URL, which is materialized like model data. Otherwise the
    code is in ``model_dir/code`` when that exists (the SDK's repacked layout), else at the
    root of the model folder. Raises ArtifactError when a set submit directory does not exist.
    """
    if submit_directory:
        if is_url(submit_directory) or Path(submit_directory).exists():
            return materialize(submit_directory, cache_dir)
        if not _is_sdk_container_path(submit_directory):
            raise ArtifactError(
                f"SAGEMAKER_SUBMIT_DIRECTORY={submit_directory!r} does not exist; set it to a "
                "folder, a .tar.gz archive or an s3:// or file:// URL, or unset it."
            )
        # Models built with the SDK carry /opt/ml/model/code even when moorage runs them
        # outside a container, where the model lives elsewhere: that path means model_dir/code.
    code = model_dir / "code"
    return code if code.is_dir() else model_dir


def _is_sdk_container_path(path: str) -> bool:
    return PurePosixPath(path).parts[-2:] == _SDK_CODE_DIR_SUFFIX
