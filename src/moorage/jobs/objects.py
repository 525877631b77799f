"""Reading an asynchronous request's input or a transform job's, listing S3 keys, and telling SNS
topics of an outcome.

An input is an S3 object, a local file, or an ``https://`` URL (a presigned S3 URL, say), read
with the standard library's client and the system's trusted certificates (``SSL_CERT_FILE``).

S3 and SNS are reached with boto3's default session, so the usual AWS settings
(``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_SNS``, profiles, the credentials chain) apply, as
for model data. Blocking: called in a thread.
"""

import functools
import urllib.request
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit
from urllib.request import url2pathname

from moorage.errors import ValidationError

# Seconds to connect, and between pieces of the body: a server that stops answering must not
# hold the request.
_HTTPS_TIMEOUT_S: Final = 60


def input_problem(uri: str) -> str | None:
    """Why moorage cannot read ``uri`` as an InputLocation, or None."""
    if uri.startswith("s3://"):
        bucket, slash, key = uri.removeprefix("s3://").partition("/")
        return None if bucket and slash and key else f"InputLocation {uri!r} names no object."
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc in ("", "localhost") and parts.path.startswith("/"):
            return None
        return f"InputLocation {uri!r} is not a local file; write file:///absolute/path."
    if uri.startswith("/"):
        return None
    if uri.startswith("https://"):
        return None if urlsplit(uri).hostname else f"InputLocation {uri!r} names no host."
    return (
        f"InputLocation {uri!r} cannot be read by moorage: give s3://bucket/key, an https:// "
        "URL, or a local file as file:///path or /path."
    )


def read(uri: str) -> bytes:
    """The object or file at ``uri`` (checked with ``input_problem``)."""
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        body = _client("s3", None).get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()
    if uri.startswith("https://"):
        with urllib.request.urlopen(uri, timeout=_HTTPS_TIMEOUT_S) as answer:
            return bytes(answer.read())
    path = Path(url2pathname(urlsplit(uri).path)) if uri.startswith("file://") else Path(uri)
    return path.read_bytes()


def s3_keys(bucket: str, prefix: str) -> list[str]:
    """The keys in ``bucket`` that start with ``prefix``, in key order."""
    pages = (
        _client("s3", None).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    return [str(item["Key"]) for page in pages for item in page.get("Contents", [])]


def publish(topic_arn: str, message: str) -> None:
    parts = topic_arn.split(":")
    if len(parts) < 6 or parts[2] != "sns":
        raise ValidationError(f"{topic_arn!r} is not an SNS topic ARN.")
    _client("sns", parts[3]).publish(TopicArn=topic_arn, Message=message)


@functools.cache
def _client(service: str, region: str | None) -> Any:
    import boto3.session
    from botocore.config import Config

    # Short timeouts: a store that does not answer must not hold a request for minutes.
    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3})
    return boto3.session.Session().client(service, region_name=region, config=config)
