"""A transform job's input object cut into records, and records into request bodies
(spec/TOOLKIT.md §7).

Pure: bytes in, bytes out. A record keeps two forms: ``payload``, as it is sent alone
(SingleRecord: framing and padding removed), and ``framed``, as it is sent among others
(MultiRecord: RecordIO and TFRecord framing kept; lines joined by newlines).
"""

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class SplitType(StrEnum):
    NONE = "None"
    LINE = "Line"
    RECORD_IO = "RecordIO"
    TF_RECORD = "TFRecord"


class BatchStrategy(StrEnum):
    SINGLE_RECORD = "SingleRecord"
    MULTI_RECORD = "MultiRecord"


class RecordError(ValueError):
    """The object cannot be cut as asked: bad framing, or a record too large to send."""


@dataclass(frozen=True, slots=True)
class Record:
    payload: bytes
    framed: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """One request: its body and the records in it, in order."""

    body: bytes
    records: tuple[bytes, ...]


# MXNet's RecordIO (dmlc-core recordio.h): magic, then a word of 3 bits of continuation flag and
# 29 bits of length, then the data padded to 4 bytes. A record holding the magic is written in
# parts, cut where the magic was; the reader puts it back.
_RECORDIO_MAGIC: Final = 0xCED7230A
_MAGIC_BYTES: Final = struct.pack("<I", _RECORDIO_MAGIC)
_LENGTH_MASK: Final = (1 << 29) - 1


def split(body: bytes, split_type: SplitType) -> list[Record]:
    """The records of ``body``: itself (None), its lines, or its RecordIO/TFRecord records."""
    if split_type is SplitType.NONE:
        return [Record(body, body)] if body else []
    if split_type is SplitType.LINE:
        return [Record(line, line) for line in _lines(body)]
    if split_type is SplitType.RECORD_IO:
        return list(_recordio(body))
    return list(_tfrecord(body))


def _lines(body: bytes) -> list[bytes]:
    # Blank lines are no records (a trailing newline, a file's empty last line); \r\n as \n.
    lines = (line.removesuffix(b"\r") for line in body.split(b"\n"))
    return [line for line in lines if line.strip()]


def _recordio(body: bytes) -> Iterator[Record]:
    offset = 0
    parts: list[bytes] = []
    start = 0
    while offset < len(body):
        if len(body) - offset < 8:
            raise RecordError(f"RecordIO data ends inside a record header at byte {offset}.")
        magic, word = struct.unpack_from("<II", body, offset)
        if magic != _RECORDIO_MAGIC:
            raise RecordError(f"RecordIO data has no record magic at byte {offset}.")
        if not parts:
            start = offset
        flag, length = word >> 29, word & _LENGTH_MASK
        data_at = offset + 8
        if data_at + length > len(body):
            raise RecordError(f"RecordIO record at byte {offset} runs past the end of the data.")
        parts.append(body[data_at : data_at + length])
        offset = data_at + length + (-length % 4)
        if flag in (0, 3):  # a whole record, or the last part of one
            yield Record(_MAGIC_BYTES.join(parts), body[start:offset])
            parts = []
    if parts:
        raise RecordError("RecordIO data ends inside a record written in parts.")


def _tfrecord(body: bytes) -> Iterator[Record]:
    # uint64 length, uint32 masked CRC of the length, data, uint32 masked CRC of the data.
    # The CRCs are not checked: the model reads the records and will find a broken one.
    offset = 0
    while offset < len(body):
        if len(body) - offset < 12:
            raise RecordError(f"TFRecord data ends inside a record header at byte {offset}.")
        (length,) = struct.unpack_from("<Q", body, offset)
        end = offset + 12 + length + 4
        if end > len(body):
            raise RecordError(f"TFRecord record at byte {offset} runs past the end of the data.")
        yield Record(body[offset + 12 : offset + 12 + length], body[offset:end])
        offset = end


def batches(
    records: Sequence[Record],
    split_type: SplitType,
    strategy: BatchStrategy,
    max_bytes: int | None,
) -> Iterator[Batch]:
    """Request bodies: one per record (SingleRecord), or as many consecutive records as fit in
    ``max_bytes`` (MultiRecord; None: no limit). Raises RecordError for a record that alone
    is larger than ``max_bytes``."""
    if split_type is SplitType.NONE or strategy is BatchStrategy.SINGLE_RECORD:
        for record in records:
            _check_fits(len(record.payload), max_bytes)
            yield Batch(record.payload, (record.payload,))
        return
    separator = b"\n" if split_type is SplitType.LINE else b""
    pending: list[Record] = []
    size = 0
    for record in records:
        _check_fits(len(record.framed), max_bytes)
        added = len(record.framed) + (len(separator) if pending else 0)
        if pending and max_bytes is not None and size + added > max_bytes:
            yield _batch(pending, separator)
            pending, size, added = [], 0, len(record.framed)
        pending.append(record)
        size += added
    if pending:
        yield _batch(pending, separator)


def _batch(records: list[Record], separator: bytes) -> Batch:
    return Batch(separator.join(r.framed for r in records), tuple(r.payload for r in records))


def _check_fits(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise RecordError(
            f"A record of {size} bytes is larger than MaxPayloadInMB allows ({max_bytes} bytes)."
        )
