"""Model data from S3: one archive, one object, or every object under a prefix.

boto3 is imported inside the functions that talk to S3, so a runtime serving local models starts
without paying for it. The client comes from boto3's default session, so the usual AWS settings
(AWS_ENDPOINT_URL_S3, profiles, region, credentials chain) apply unchanged.
"""

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from moorage.artifacts.cache import build_once
from moorage.artifacts.names import unsafe_reason
from moorage.artifacts.unpack import Limits, is_archive_name, unpack_cached
from moorage.errors import ArtifactError

# Error codes S3 (and S3-compatible servers) use for a missing bucket or key; HEAD has no body,
# so a missing key there is just "404".
_MISSING = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
_PARALLEL_DOWNLOADS = 8


class _S3Client(Protocol):
    # The few calls used here; boto3 ships no type information, so responses are loose dicts.
    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]: ...
    def get_paginator(self, operation_name: str) -> Any: ...
    def download_file(self, Bucket: str, Key: str, Filename: str) -> None: ...


class _Object(NamedTuple):
    key: str
    etag: str
    size: int


def materialize_s3(url: str, cache_dir: Path, limits: Limits) -> Path:
    """Fetch ``s3://bucket/key`` into the cache and return the local model folder."""
    bucket, key = _split(url)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _translated_errors(url):
        client = _client()
        if key == "" or key.endswith("/"):
            return _fetch_prefix(client, url, bucket, key, cache_dir, limits)
        head = client.head_object(Bucket=bucket, Key=key)
        obj = _Object(key, str(head.get("ETag", "")), int(head["ContentLength"]))
        if is_archive_name(key):
            return _fetch_archive(client, url, bucket, obj, cache_dir, limits)
        return _fetch_object(client, url, bucket, obj, cache_dir, limits)


def _split(url: str) -> tuple[str, str]:
    # Not urlsplit: S3 keys may hold '?' and '#', which it would cut off as query or fragment.
    bucket, slash, key = url.removeprefix("s3://").partition("/")
    if not bucket or not slash:
        raise ArtifactError(f"{url!r} is not an s3://bucket/key URL.")
    return bucket, key


def _client() -> _S3Client:
    import boto3.session

    client: _S3Client = boto3.session.Session().client("s3")
    return client


@contextmanager
def _translated_errors(url: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise ArtifactError(f"Model data {url} does not exist (S3 said {code}).") from exc
        raise ArtifactError(f"Cannot fetch model data {url}: {exc}") from exc
    except BotoCoreError as exc:
        raise ArtifactError(f"Cannot fetch model data {url}: {exc}") from exc


def _fetch_archive(
    client: _S3Client, url: str, bucket: str, obj: _Object, cache_dir: Path, limits: Limits
) -> Path:
    if obj.size > limits.archive_bytes:
        raise ArtifactError(
            f"Archive {url} is {obj.size} bytes, over the limit of {limits.archive_bytes}."
        )
    # The cache is keyed by the archive's bytes, so it has to be here before we can look.
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".tar", dir=cache_dir)
    os.close(fd)
    download = Path(name)
    try:
        client.download_file(bucket, obj.key, str(download))
        return unpack_cached(download, cache_dir, limits, source=url)
    finally:
        download.unlink(missing_ok=True)


def _fetch_object(
    client: _S3Client, url: str, bucket: str, obj: _Object, cache_dir: Path, limits: Limits
) -> Path:
    name = obj.key.rsplit("/", 1)[-1]
    reason = unsafe_reason([name])
    if reason:
        raise ArtifactError(f"Refusing to fetch {url}: its file name {reason}.")
    _check_size(url, obj.size, limits)
    return build_once(
        cache_dir,
        _listing_digest(bucket, [(name,)], [obj]),
        lambda dest: client.download_file(bucket, obj.key, str(dest / name)),
    )


def _fetch_prefix(
    client: _S3Client, url: str, bucket: str, prefix: str, cache_dir: Path, limits: Limits
) -> Path:
    objects = _list(client, bucket, prefix)
    if not objects:
        raise ArtifactError(f"Model data {url} does not exist: no objects under that prefix.")
    paths = _relative_paths(url, prefix, objects)
    if len(objects) > limits.members:
        raise ArtifactError(f"Refusing to fetch {url}: more than {limits.members} objects.")
    _check_size(url, sum(obj.size for obj in objects), limits)

    def download_all(dest: Path) -> None:
        for relative in paths:
            dest.joinpath(*relative[:-1]).mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(_PARALLEL_DOWNLOADS) as pool:
            done = pool.map(
                lambda pair: client.download_file(
                    bucket, pair[0].key, str(dest.joinpath(*pair[1]))
                ),
                zip(objects, paths, strict=True),
            )
            for _ in done:
                pass  # re-raises the first failed download

    return build_once(cache_dir, _listing_digest(bucket, paths, objects), download_all)


def _list(client: _S3Client, bucket: str, prefix: str) -> list[_Object]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [
        _Object(str(item["Key"]), str(item.get("ETag", "")), int(item["Size"]))
        for page in pages
        for item in page.get("Contents", [])
    ]


def _relative_paths(url: str, prefix: str, objects: list[_Object]) -> list[tuple[str, ...]]:
    """Key minus prefix, split into folders, refusing the names SageMaker refuses."""
    paths: list[tuple[str, ...]] = []
    for obj in objects:
        relative = obj.key[len(prefix) :]
        if relative.endswith("/") or not relative:
            reason = "is a folder marker (a key ending in '/'), which SageMaker refuses"
        else:
            reason = unsafe_reason(relative.split("/")) or ""
        if reason:
            raise ArtifactError(f"Refusing to fetch {url}: key {obj.key!r} {reason}.")
        paths.append(tuple(relative.split("/")))
    folders = {path[:end] for path in paths for end in range(1, len(path))}
    for path in paths:
        if path in folders:
            raise ArtifactError(
                f"Refusing to fetch {url}: {'/'.join(path)!r} is both a file and a folder."
            )
    return paths


def _check_size(url: str, size: int, limits: Limits) -> None:
    if size > limits.unpacked_bytes:
        raise ArtifactError(
            f"Model data {url} is {size} bytes, over the limit of {limits.unpacked_bytes}."
        )


def _listing_digest(bucket: str, paths: list[tuple[str, ...]], objects: list[_Object]) -> str:
    """Cache key for fetched objects: a new ETag or size means new content, so a new folder.

    The local paths are part of it because one key lands at different paths when fetched alone
    (its last segment) and as part of a prefix (key minus prefix).
    """
    listing = sorted(
        ("/".join(path), obj.key, obj.etag, obj.size)
        for path, obj in zip(paths, objects, strict=True)
    )
    return hashlib.sha256(json.dumps([bucket, listing]).encode()).hexdigest()
