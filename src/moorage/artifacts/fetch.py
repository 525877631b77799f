"""Model data URL → local folder: a folder path, an archive path, file:// or s3://."""

import re
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from moorage.artifacts import s3
from moorage.artifacts.unpack import (
    MAX_ARCHIVE_BYTES,
    MAX_UNPACKED_BYTES,
    Limits,
    is_archive_name,
    unpack_cached,
)
from moorage.errors import ArtifactError

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def materialize(
    url: str,
    cache_dir: Path,
    *,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
) -> Path:
    """Return a local folder holding the model files that ``url`` names.

    A local folder (path or file:// URL) is returned as it is, resolved, without a copy. A
    .tar.gz, .tgz or .tar archive, local or on S3, is unpacked safely into
    ``cache_dir/<sha256 of the archive>``, once. ``s3://bucket/prefix/`` fetches every object
    under the prefix and any other ``s3://bucket/key`` fetches that one object as a file named
    after the key's last segment, both into the cache, as SageMaker lays out /opt/ml/model.
    Raises ArtifactError when the data is missing, unsafe or over the limits.
    """
    limits = Limits(archive_bytes=max_archive_bytes, unpacked_bytes=max_unpacked_bytes)
    if url.startswith("s3://"):
        return s3.materialize_s3(url, cache_dir, limits)
    if url.startswith("file://"):
        return _materialize_local(_file_url_path(url), url, cache_dir, limits)
    if is_url(url):
        raise ArtifactError(f"Model data {url!r}: only paths, file:// and s3:// are supported.")
    if not url:
        raise ArtifactError("Model data URL is empty.")
    return _materialize_local(Path(url), url, cache_dir, limits)


def local_path(url: str) -> Path | None:
    """The local file or folder ``url`` names (a path or a file:// URL); None for other URLs."""
    if url.startswith("file://"):
        return _file_url_path(url)
    return None if is_url(url) else Path(url)


def is_url(location: str) -> bool:
    """Whether ``location`` is a URL rather than a path (which may well contain a colon)."""
    return _URL.match(location) is not None


def _file_url_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ArtifactError(f"{url!r} names another host; a file:// URL must be local.")
    return Path(url2pathname(parts.path))


def _materialize_local(path: Path, url: str, cache_dir: Path, limits: Limits) -> Path:
    if path.is_dir():
        return path.resolve()
    if not path.exists():
        raise ArtifactError(f"Model data {url} does not exist.")
    if not path.is_file() or not is_archive_name(path.name):
        raise ArtifactError(
            f"Model data {url} is neither a folder nor a .tar.gz, .tgz or .tar archive."
        )
    return unpack_cached(path, cache_dir, limits, source=url)
