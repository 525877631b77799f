"""The input objects of a transform job, and the output key of each (spec/TOOLKIT.md §7).

``S3Prefix``: every object whose key starts with the prefix; ``ManifestFile``: the objects a
manifest lists (``[{"prefix": "s3://b/p/"}, "key1", "key2", …]``). moorage also reads local
files: ``file:///folder`` (or ``/folder``) is every file under it. Blocking: called in a thread.
"""

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from moorage.jobs import objects


class InputError(ValueError):
    """The job's input cannot be listed or read; the message says which and why."""


@dataclass(frozen=True, slots=True)
class InputObject:
    uri: str
    #: The key relative to the input prefix; the output goes to ``<S3OutputPath>/<key>.out``.
    relative: str


def list_inputs(uri: str, data_type: str) -> list[InputObject]:
    """The objects the job reads, in key order; InputError if there are none."""
    try:
        found = _manifest(uri) if data_type == "ManifestFile" else _prefix(uri)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"Cannot list the input {uri}: {exc}") from exc
    if not found:
        raise InputError(f"No input objects found at {uri} ({data_type}).")
    return found


def read_input(item: InputObject, compression: str) -> bytes:
    try:
        body = objects.read(item.uri)
    except Exception as exc:
        raise InputError(f"Cannot read the input {item.uri}: {exc}") from exc
    if compression != "Gzip":
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError) as exc:
        raise InputError(f"Cannot decompress {item.uri} (CompressionType Gzip): {exc}") from exc


def relative_key(prefix: str, key: str) -> str:
    """``key`` relative to the input ``prefix``: past the prefix when it names a folder of the
    key, else past the prefix's own folder (``in/x.csv`` for ``in/x``, ``x.csv`` for itself)."""
    if prefix.endswith("/") or key[len(prefix) : len(prefix) + 1] == "/":
        return key[len(prefix) :].lstrip("/")
    return key[prefix.rfind("/") + 1 :]


def _prefix(uri: str) -> list[InputObject]:
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        keys = [k for k in objects.s3_keys(bucket, prefix) if not k.endswith("/")]
        return [InputObject(f"s3://{bucket}/{k}", relative_key(prefix, k)) for k in keys]
    path = _local_path(uri)
    files = _local_files(path)
    base = f"{path}/" if os.path.isdir(path) else path
    return [InputObject(Path(f).as_uri(), relative_key(base, f)) for f in files]


def _manifest(uri: str) -> list[InputObject]:
    try:
        manifest = json.loads(objects.read(uri))
    except ValueError as exc:
        raise InputError(f"The manifest {uri} is not JSON: {exc}") from exc
    prefix = manifest[0].get("prefix") if manifest and isinstance(manifest[0], dict) else None
    keys = manifest[1:] if prefix is not None else None
    if not isinstance(prefix, str) or not all(isinstance(k, str) for k in keys or [None]):
        raise InputError(
            f'The manifest {uri} must be a JSON array: {{"prefix": "s3://bucket/prefix/"}}, '
            "then the keys relative to it."
        )
    assert keys is not None
    if not prefix.startswith(("s3://", "file://", "/")):
        raise InputError(f"The manifest {uri} has a prefix moorage cannot read: {prefix!r}.")
    return [InputObject(prefix + key, key.lstrip("/")) for key in keys]


def _local_path(uri: str) -> str:
    if uri.startswith("file://"):
        return url2pathname(urlsplit(uri).path)
    return uri


def _local_files(path: str) -> list[str]:
    """The files under folder ``path``, or else those whose paths start with ``path``."""
    if os.path.isdir(path):
        return sorted(_walk(path))
    folder, name = os.path.split(path)
    found: list[str] = []
    if not os.path.isdir(folder):
        return found
    for entry in os.scandir(folder):
        if entry.name.startswith(name) and not entry.name.startswith("."):
            found.extend(_walk(entry.path) if entry.is_dir() else [entry.path])
    return sorted(found)


def _walk(folder: str) -> list[str]:
    # Hidden files are left out: a half-written output (``.x.partial``) is no input.
    return [
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if not name.startswith(".")
    ]
