"""TargetModel → the model data it names under a multi-model endpoint's prefix.

SageMaker resolves ``ModelDataUrl`` (a prefix) + ``TargetModel`` (a relative path) on every
request that needs a load, with no listing cache: a model uploaded after the endpoint was
created is invokable at once (spec/LIMITS.md §6). moorage does the same, and refuses targets
that would leave the prefix, which S3 cannot express but a local folder can.
"""

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit
from urllib.request import url2pathname

from moorage.errors import ArtifactError, ValidationError

MAX_TARGET_LENGTH: Final = 1024
# Keys sent to the instance as model_name: opaque (spec/CONTAINER.md §5) and URL-path safe.
_KEY_LENGTH: Final = 32
_MISSING_S3: Final = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})


def target_problem(target: str) -> str | None:
    """Why ``target`` is not an acceptable TargetModel, or None.

    SageMaker's pattern is ``\\A\\S[\\p{Print}]*\\z``, 1 to 1024 characters; moorage also
    refuses what could escape the prefix on a file system: absolute paths, backslashes, and
    empty, ``.`` or ``..`` segments.
    """
    if not 1 <= len(target) <= MAX_TARGET_LENGTH:
        return f"TargetModel must be 1 to {MAX_TARGET_LENGTH} characters long."
    if target[0].isspace() or not target.isprintable():
        return (
            "TargetModel must be printable characters and must not start with whitespace "
            "(pattern \\A\\S[\\p{Print}]*\\z)."
        )
    if target.startswith("/") or "\\" in target:
        return (
            f"TargetModel {target!r} must be a path relative to the model's ModelDataUrl, "
            "without a leading '/' or backslashes."
        )
    if any(segment in ("", ".", "..") for segment in target.split("/")):
        return (
            f"TargetModel {target!r} must not hold empty, '.' or '..' path segments; it names "
            "a model under the model's ModelDataUrl."
        )
    return None


def model_key(target: str) -> str:
    """The instance-side model name for ``target``: a hash, so any TargetModel fits a URL."""
    return hashlib.sha256(target.encode()).hexdigest()[:_KEY_LENGTH]


@dataclass(frozen=True, slots=True)
class ModelPrefix:
    """A multi-model container's ``ModelDataUrl``: ``s3://bucket/prefix``, ``file://`` or a path.

    A trailing slash is optional, as in SageMaker.
    """

    url: str

    def resolve(self, target: str) -> str:
        """The URL of ``target``'s model data, in the prefix's own form (checked targets only)."""
        if self.url.startswith("s3://"):
            return f"{self.url.rstrip('/')}/{target}"
        path = self.local_path() / target
        return path.as_uri() if self.url.startswith("file://") else str(path)

    def local_path(self) -> Path:
        if self.url.startswith("file://"):
            parts = urlsplit(self.url)
            if parts.netloc not in ("", "localhost"):
                raise ArtifactError(f"{self.url!r} names another host; file:// must be local.")
            return Path(url2pathname(parts.path))
        return Path(self.url)


class TargetChecker:
    """Whether a resolved target exists, with SageMaker's wording when it does not.

    Blocking (a stat, or an S3 HEAD): callers run it in an executor. One S3 client per server,
    made on first use from boto3's default session, so AWS_ENDPOINT_URL_S3 and the usual
    credential chain apply, as for the instances.
    """

    def __init__(self, client_factory: Callable[[], Any] | None = None) -> None:
        self._client: Any = None
        self._client_factory = client_factory or _s3_client
        self._lock = threading.Lock()

    def check(self, prefix: ModelPrefix, target: str) -> None:
        """Raise ValidationError when ``target`` is not under ``prefix``."""
        if prefix.url.startswith("s3://"):
            self._check_s3(prefix.resolve(target))
            return
        path = prefix.local_path() / target
        if not path.exists():
            raise ValidationError(
                f"Failed to find model data (path: {path}). Please ensure that there is a model "
                f"archive or folder at TargetModel {target!r} under the model's ModelDataUrl "
                f"{prefix.url}."
            )

    def _check_s3(self, url: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, _, key = url.removeprefix("s3://").partition("/")
        try:
            self._s3().head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_S3:
                raise ValidationError(
                    f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure "
                    "that there is an object located at the URL and that the role passed to "
                    "CreateModel has permissions to download the model."
                ) from exc
            raise ValidationError(f"Cannot read model data {url}: {exc}") from exc
        except BotoCoreError as exc:
            raise ValidationError(f"Cannot read model data {url}: {exc}") from exc

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client


def _s3_client() -> Any:
    import boto3.session

    return boto3.session.Session().client("s3")
