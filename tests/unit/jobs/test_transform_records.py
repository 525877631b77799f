"""Cutting a transform job's input object into records and request bodies (TOOLKIT.md §7)."""

import io
import struct
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from sagemaker.serializer_utils import _write_recordio

from moorage.jobs.records import BatchStrategy, RecordError, SplitType, batches, split

SINGLE, MULTI = BatchStrategy.SINGLE_RECORD, BatchStrategy.MULTI_RECORD


def recordio(*payloads: bytes) -> bytes:
    out = io.BytesIO()
    for payload in payloads:
        _write_recordio(out, payload)  # the SageMaker SDK's own writer
    return out.getvalue()


def tfrecord(*payloads: bytes) -> bytes:
    # The CRCs are not checked; any four bytes do.
    return b"".join(struct.pack("<Q", len(p)) + b"crc1" + p + b"crc2" for p in payloads)


def bodies(body: bytes, split_type, strategy, max_bytes=None) -> list[bytes]:
    return [b.body for b in batches(split(body, split_type), split_type, strategy, max_bytes)]


def test_split_none_sends_the_whole_object_once():
    assert bodies(b"a\nb\n", SplitType.NONE, MULTI) == [b"a\nb\n"]
    assert bodies(b"", SplitType.NONE, MULTI) == []


def test_single_record_sends_one_line_each_without_blank_lines_or_carriage_returns():
    assert bodies(b"a\r\nb\n\n  \nc", SplitType.LINE, SINGLE) == [b"a", b"b", b"c"]


def test_multi_record_packs_consecutive_lines_up_to_the_payload_limit():
    lines = b"\n".join([b"1234", b"5678", b"9abc", b"defg"])
    # 4 + 1 + 4 = 9 bytes fit in 10, a third line would make 14.
    assert bodies(lines, SplitType.LINE, MULTI, 10) == [b"1234\n5678", b"9abc\ndefg"]
    assert bodies(lines, SplitType.LINE, MULTI, None) == [lines]
    batch = next(batches(split(lines, SplitType.LINE), SplitType.LINE, MULTI, 10))
    assert batch.records == (b"1234", b"5678")


def test_a_record_larger_than_the_payload_limit_fails_the_object():
    with pytest.raises(RecordError, match="larger than MaxPayloadInMB"):
        bodies(b"short\nmuch too long", SplitType.LINE, MULTI, 8)
    with pytest.raises(RecordError):
        bodies(b"0123456789", SplitType.NONE, MULTI, 8)


def test_recordio_single_record_strips_framing_and_padding():
    body = recordio(b"abc", b"defgh", b"")
    assert bodies(body, SplitType.RECORD_IO, SINGLE) == [b"abc", b"defgh", b""]


def test_recordio_multi_record_keeps_the_framing():
    body = recordio(b"abc", b"defgh")
    assert bodies(body, SplitType.RECORD_IO, MULTI) == [body]
    first, second = recordio(b"abc"), recordio(b"defgh")  # 12 and 16 bytes, padded
    assert bodies(body, SplitType.RECORD_IO, MULTI, len(second)) == [first, second]


def test_recordio_records_written_in_parts_are_put_back_together():
    magic = struct.pack("<I", 0xCED7230A)
    # dmlc-core cuts a record where it holds the magic: flag 1 (first part), 3 (last part).
    part = magic + struct.pack("<I", (1 << 29) | 2) + b"ab" + b"\0\0"
    last = magic + struct.pack("<I", (3 << 29) | 3) + b"cde" + b"\0"
    assert bodies(part + last, SplitType.RECORD_IO, SINGLE) == [b"ab" + magic + b"cde"]


def test_broken_recordio_is_refused():
    with pytest.raises(RecordError, match="no record magic"):
        split(b"not recordio at all", SplitType.RECORD_IO)
    with pytest.raises(RecordError, match="past the end"):
        split(recordio(b"abcdef")[:-4], SplitType.RECORD_IO)


def test_tfrecord_single_and_multi_record():
    body = tfrecord(b"one", b"two!")
    assert bodies(body, SplitType.TF_RECORD, SINGLE) == [b"one", b"two!"]
    assert bodies(body, SplitType.TF_RECORD, MULTI) == [body]
    with pytest.raises(RecordError):
        split(body[:-1], SplitType.TF_RECORD)
