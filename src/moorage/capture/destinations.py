"""Where capture files go: ``DestinationS3Uri`` as an S3 prefix or, moorage's extension for
local use, a folder (``file:///path`` or ``/path``).

S3 is written with boto3's default session, so the usual AWS settings (``AWS_ENDPOINT_URL_S3``,
profiles, region, the credentials chain) apply, as for model data. boto3 is imported when the
first file is written, so a server that captures nothing never loads it for this.
"""

import functools
import os
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

from moorage.errors import ValidationError


class Destination(Protocol):
    """A place that stores whole files under relative ``/``-separated keys."""

    @property
    def uri(self) -> str: ...

    def write(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store ``data`` as the file ``key``; raise on failure. Called off the event loop."""


def destination(uri: str, member: str = "DestinationS3Uri") -> Destination:
    """The destination ``uri`` names; ValidationError, naming the request's ``member``, for
    one moorage cannot write to."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValidationError(f"{member} {uri!r} names no bucket.")
        prefix = prefix.strip("/")
        return S3Prefix(uri, bucket, f"{prefix}/" if prefix else "")
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValidationError(
                f"{member} {uri!r} is not a local folder; write file:///absolute/path."
            )
        return LocalFolder(uri, Path(url2pathname(parts.path)))
    if uri.startswith("/"):
        return LocalFolder(uri, Path(uri))
    raise ValidationError(
        f"{member} {uri!r} cannot be written by moorage: give s3://bucket/prefix, or a "
        "local folder as file:///path or /path."
    )


class LocalFolder:
    def __init__(self, uri: str, root: Path) -> None:
        self.uri = uri
        self._root = root

    def write(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed: a reader listing *.jsonl never sees half a file.
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)


class S3Prefix:
    def __init__(self, uri: str, bucket: str, prefix: str) -> None:
        self.uri = uri
        self._bucket = bucket
        self._prefix = prefix

    def write(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        _s3().put_object(Bucket=self._bucket, Key=self._prefix + key, Body=data, **extra)


@functools.cache
def _s3() -> Any:
    """One S3 client for every destination: making one is slow. Only the writer's thread
    calls this."""
    import boto3.session
    from botocore.config import Config

    # Short timeouts: a destination that does not answer must not hold the writer for minutes.
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3})
    return boto3.session.Session().client("s3", config=config)
