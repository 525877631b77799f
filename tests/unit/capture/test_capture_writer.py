"""The capture writer: sampling, capture modes, batching into files, failures that stay quiet."""

import json
import logging
from datetime import UTC, datetime

import pytest

from moorage.capture import CaptureWriter, check_config, writer
from moorage.domain import (
    CaptureMode,
    DataCaptureConfig,
    EndpointConfig,
    ProductionVariant,
    ServerlessConfig,
)
from moorage.errors import ValidationError
from moorage.http.client import ClientResponse

HEADERS = [("content-type", "text/csv"), ("x-amzn-sagemaker-inference-id", "id-1")]
ANSWER = ClientResponse(200, [("content-type", "application/json")], b"[1]")


def settings(folder, *, percentage=100, mode=CaptureMode.INPUT_AND_OUTPUT, **kwargs):
    return DataCaptureConfig(
        destination_s3_uri=str(folder),
        initial_sampling_percentage=percentage,
        capture_modes=frozenset({mode}),
        csv_content_types=("text/csv",),
        json_content_types=("application/json",),
        **kwargs,
    )


def lines(folder):
    return [
        json.loads(text)
        for path in sorted(folder.rglob("*.jsonl"))
        for text in path.read_text().splitlines()
    ]


@pytest.fixture
def captures():
    captures = CaptureWriter(flush_interval_s=3600)
    yield captures
    captures.close()


def test_captured_invocations_are_written_at_close(tmp_path, captures):
    tap = captures.tap("ep", "AllTraffic", settings(tmp_path))
    assert tap is not None
    assert tap.captures_request
    body = [memoryview(bytearray(b"1,2,")), b"3"]
    tap.record(HEADERS, body, ANSWER)
    body[0][:] = b"9,9,"  # the request's buffer is lent again once answered
    captures.close()
    [path] = tmp_path.rglob("*.jsonl")
    assert path.relative_to(tmp_path).parts[:2] == ("ep", "AllTraffic")
    [record] = lines(tmp_path)
    assert record["captureData"]["endpointInput"]["data"] == "1,2,3"
    assert record["captureData"]["endpointInput"]["encoding"] == "CSV"
    assert record["captureData"]["endpointOutput"]["data"] == "[1]"
    assert record["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert record["eventMetadata"]["inferenceId"] == "id-1"


def test_output_mode_leaves_requests_alone(tmp_path, captures):
    tap = captures.tap("ep", "v", settings(tmp_path, mode=CaptureMode.OUTPUT))
    assert tap is not None
    assert not tap.captures_request
    tap.record([], [b"x"], ClientResponse(200, [], b"\x00"))
    captures.close()
    [record] = lines(tmp_path)
    assert record["captureData"] == {
        "endpointOutput": {
            "observedContentType": "application/octet-stream",
            "mode": "OUTPUT",
            "data": "AA==",
            "encoding": "BASE64",
        }
    }
    assert "inferenceId" not in record["eventMetadata"]


@pytest.mark.parametrize("changes", [{"percentage": 0}, {"enable_capture": False}])
def test_nothing_to_capture_gives_no_hook(tmp_path, captures, changes):
    assert captures.tap("ep", "v", settings(tmp_path, **changes)) is None
    assert captures.tap("ep", "v", None) is None


def test_sampling_takes_about_the_percentage(tmp_path, captures):
    tap = captures.tap("ep", "v", settings(tmp_path, percentage=25))
    assert tap is not None
    for _ in range(2000):
        tap.record(HEADERS, [b"1"], ANSWER)
    captures.close()
    assert 350 < len(lines(tmp_path)) < 650


def test_a_batch_is_one_file_per_variant(tmp_path, captures):
    taps = [captures.tap("ep", name, settings(tmp_path)) for name in ("a", "b")]
    for tap in taps * 3:
        assert tap is not None
        tap.record(HEADERS, [b"1"], ANSWER)
    captures.close()
    files = sorted(p.relative_to(tmp_path).parts[1] for p in tmp_path.rglob("*.jsonl"))
    assert files == ["a", "b"]
    assert len(lines(tmp_path)) == 6


def test_a_failing_destination_is_logged_not_raised(tmp_path, captures, caplog):
    (tmp_path / "file").write_text("not a folder")
    tap = captures.tap("ep", "v", settings(tmp_path / "file"))
    assert tap is not None
    tap.record(HEADERS, [b"1"], ANSWER)
    with caplog.at_level(logging.WARNING):
        captures.close()
    assert "data capture of ep/v" in caplog.text
    assert "1 invocations lost" in caplog.text


def test_invocations_go_uncaptured_when_the_writer_is_behind(
    tmp_path, captures, caplog, monkeypatch
):
    monkeypatch.setattr(writer, "MAX_PENDING_BYTES", 10)
    monkeypatch.setattr(writer, "WAKE_BYTES", 10**9)
    tap = captures.tap("ep", "v", settings(tmp_path, mode=CaptureMode.INPUT))
    assert tap is not None
    for _ in range(3):
        tap.record(HEADERS, [b"12345678"], ANSWER)
    with caplog.at_level(logging.WARNING):
        captures.close()
    assert len(lines(tmp_path)) == 2
    assert "1 invocations not captured" in caplog.text


def endpoint_config(capture, **variant):
    return EndpointConfig(
        name="c",
        arn="arn:aws:sagemaker:us-east-1:000000000000:endpoint-config/c",
        creation_time=datetime.now(UTC),
        production_variants=(ProductionVariant(variant_name="v", model_name="m", **variant),),
        data_capture_config=capture,
    )


def test_config_checks_refuse_what_moorage_cannot_capture(tmp_path):
    instances = {"instance_type": "ml.m5.large", "initial_instance_count": 1}
    check_config(endpoint_config(settings(tmp_path), **instances))
    check_config(endpoint_config(None, **instances))
    with pytest.raises(ValidationError, match="cannot be written by moorage"):
        check_config(endpoint_config(settings("https://bucket/capture"), **instances))
    serverless = ServerlessConfig(memory_size_in_mb=2048, max_concurrency=5)
    with pytest.raises(ValidationError, match="serverless endpoints do not support data capture"):
        check_config(endpoint_config(settings(tmp_path), serverless_config=serverless))
