"""Capture lines, file names and destinations, in SageMaker's data capture format."""

import base64
import json
import uuid
from pathlib import Path

import pytest

from moorage.capture import destination
from moorage.capture.records import ContentTypes, encode, event_id, file_key, line
from moorage.errors import ValidationError

TYPES = ContentTypes.of(("text/csv",), ("application/json", "application/jsonlines"))
# 2021-09-12T08:03:35.123Z
WHEN = 1631433815.123


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("text/csv", "CSV"),
        ("text/csv; charset=utf-8", "CSV"),
        ("Text/CSV", "CSV"),
        ("application/json", "JSON"),
        ("application/jsonlines", "JSON"),
        ("application/x-npy", "BASE64"),
        ("text/plain", "BASE64"),
    ],
)
def test_encoding_follows_the_listed_content_types(content_type, encoding):
    data, got = encode(b"1,2", content_type, TYPES)
    assert got == encoding
    assert data == (base64.b64encode(b"1,2").decode() if encoding == "BASE64" else "1,2")


def test_everything_is_base64_when_no_content_types_are_listed():
    assert encode(b"[1]", "application/json", ContentTypes()) == ("WzFd", "BASE64")


def test_a_text_type_that_is_not_utf8_is_base64():
    assert encode(b"\xff\xfe", "text/csv", TYPES) == ("//4=", "BASE64")


def test_line_has_sagemakers_shape():
    text = line(
        event_id="4651a1bf-4b00-4248-a309-4a18b11e4277",
        when=WHEN,
        inference_id="order-17",
        request_type="text/csv",
        request=b"5.1,3.5",
        response_type="application/octet-stream",
        response=b"\x00\x01",
        types=TYPES,
    )
    assert "\n" not in text
    assert " " not in text
    assert json.loads(text) == {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": "5.1,3.5",
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": "application/octet-stream",
                "mode": "OUTPUT",
                "data": "AAE=",
                "encoding": "BASE64",
            },
        },
        "eventMetadata": {
            "eventId": "4651a1bf-4b00-4248-a309-4a18b11e4277",
            "inferenceId": "order-17",
            "inferenceTime": "2021-09-12T08:03:35Z",
        },
        "eventVersion": "0",
    }


def test_line_leaves_out_what_was_not_captured():
    text = line(
        event_id="e",
        when=WHEN,
        inference_id=None,
        request_type="application/json",
        request=b"[1]",
        response_type="",
        response=None,
        types=TYPES,
    )
    record = json.loads(text)
    assert list(record["captureData"]) == ["endpointInput"]
    assert record["eventMetadata"] == {"eventId": "e", "inferenceTime": "2021-09-12T08:03:35Z"}


def test_line_escapes_text_bodies():
    body = '{"q": "a \\"quoted\\" line\\nand é ✓"}\n\t\x01'
    text = line(
        event_id="e",
        when=WHEN,
        inference_id='say "hi"',
        request_type="application/json",
        request=body.encode(),
        response_type="application/json",
        response=b"[]",
        types=TYPES,
    )
    assert "\n" not in text
    record = json.loads(text)
    assert record["captureData"]["endpointInput"]["data"] == body
    assert record["eventMetadata"]["inferenceId"] == 'say "hi"'


def test_file_key_is_partitioned_by_hour_and_named_by_time():
    key = file_key("churn", "AllTraffic", WHEN, "cee08c3a")
    assert key == "churn/AllTraffic/2021/09/12/08/03-35-123-cee08c3a.jsonl"


def test_event_ids_are_distinct_version_4_uuids():
    ids = {event_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value


@pytest.mark.parametrize(
    "uri", ["s3://bucket", "s3://bucket/", "s3://bucket/a/b", "file:///tmp/capture", "/tmp/x"]
)
def test_destinations_moorage_writes(uri):
    assert destination(uri).uri == uri


@pytest.mark.parametrize(
    "uri", ["https://bucket.s3.amazonaws.com/x", "s3:///x", "file://host/x", "relative/dir", ""]
)
def test_destinations_moorage_refuses(uri):
    with pytest.raises(ValidationError, match="DestinationS3Uri"):
        destination(uri)


def test_local_folder_writes_whole_files(tmp_path):
    folder = destination(f"file://{tmp_path}/capture")
    folder.write("ep/v/2021/09/12/08/a.jsonl", b"{}\n")
    written = tmp_path / "capture/ep/v/2021/09/12/08/a.jsonl"
    assert written.read_bytes() == b"{}\n"
    assert [p.name for p in Path(written.parent).iterdir()] == ["a.jsonl"]
