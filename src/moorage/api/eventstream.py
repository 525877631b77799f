"""AWS event-stream messages, for InvokeEndpointWithResponseStream (spec/API.md §6.3).

Written here because no maintained Python package encodes them (botocore only decodes); the
framing is a prelude, string headers, the payload and two CRC32s. The tests decode what this
writes with botocore's own parser.
"""

import json
import struct
import zlib
from typing import Final

CONTENT_TYPE: Final = "application/vnd.amazon.eventstream"
# botocore refuses a message whose payload is over 24 MiB; parts stay far below that.
PART_BYTES: Final = 1024 * 1024
_STRING: Final = 7


def message_of(headers: list[tuple[str, str]], payload: bytes | memoryview) -> bytes:
    encoded = b"".join(_header(name, value) for name, value in headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((head, payload, struct.pack(">I", crc)))


def payload_parts(body: bytes | memoryview) -> bytes:
    """``body`` as PayloadPart events, which boto3 yields as ``{"PayloadPart": {"Bytes": …}}``."""
    view = memoryview(body)
    return b"".join(
        message_of(_PAYLOAD_PART, view[start : start + PART_BYTES])
        for start in range(0, len(view), PART_BYTES)
    )


def stream_error(kind: str, message: str, error_code: str | None = None) -> bytes:
    """An exception event: ``kind`` ModelStreamError (with ``error_code``) or
    InternalStreamFailure, which boto3 raises as EventStreamError while iterating."""
    payload = {"Message": message, **({"ErrorCode": error_code} if error_code else {})}
    headers = [
        (":message-type", "exception"),
        (":exception-type", kind),
        (":content-type", "application/json"),
    ]
    return message_of(headers, json.dumps(payload).encode())


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return b"".join(
        (
            struct.pack(">B", len(raw_name)),
            raw_name,
            struct.pack(">BH", _STRING, len(raw_value)),
            raw_value,
        )
    )


_PAYLOAD_PART: Final = [
    (":message-type", "event"),
    (":event-type", "PayloadPart"),
    (":content-type", "application/octet-stream"),
]
