"""One captured invocation → one line of a capture file, in SageMaker's format.

A line (one JSON object, no spaces), as SageMaker writes them::

    {"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT",
    "data":"5.1,3.5","encoding":"CSV"},"endpointOutput":{"observedContentType":"application/json",
    "mode":"OUTPUT","data":"[0]","encoding":"JSON"}},"eventMetadata":{"eventId":"<uuid>",
    "inferenceId":"<InferenceId>","inferenceTime":"2021-09-12T08:03:35Z"},"eventVersion":"0"}

A side not captured (``CaptureMode`` ``Input`` or ``Output``) is left out, as is
``inferenceId`` when the caller sent none. A body is its text when its content type is one of
``CaptureContentTypeHeader``'s ``CsvContentTypes`` (``"CSV"``) or ``JsonContentTypes``
(``"JSON"``), else base64 (``"BASE64"``), which is SageMaker's choice for everything when that
header lists none. Content types compare by media type, without parameters and case, so
``text/csv; charset=utf-8`` is CSV when ``text/csv`` is listed, as in SageMaker's own files.
"""

import base64
import functools
import random
import time
from dataclasses import dataclass
from json.encoder import encode_basestring

# What an unlabelled body is taken to be (RFC 9110 §8.3); botocore sends no Content-Type when
# ContentType is not given.
UNLABELLED: str = "application/octet-stream"
# A JSON string literal, non-ASCII kept as it is (the C encoder's).
_quote = encode_basestring
# RFC 9562's version (4) and variant (10) bits of a UUID as a 128-bit integer.
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


@dataclass(frozen=True, slots=True)
class ContentTypes:
    """The media types (lower case, without parameters) captured as text."""

    csv: frozenset[str] = frozenset()
    json: frozenset[str] = frozenset()

    @classmethod
    def of(cls, csv: tuple[str, ...], json: tuple[str, ...]) -> "ContentTypes":
        return cls(frozenset(map(media_type, csv)), frozenset(map(media_type, json)))


def media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def encode(data: bytes, content_type: str, types: ContentTypes) -> tuple[str, str]:
    """``(data, encoding)`` of a body: its text for a CSV or JSON content type, else base64."""
    encoding = _text_encoding(content_type, types)
    if encoding is not None:
        try:
            return data.decode("utf-8"), encoding
        except UnicodeDecodeError:
            pass  # labelled as text but is not: base64 keeps it intact
    return base64.b64encode(data).decode("ascii"), "BASE64"


# Cached: an endpoint sees few content types, and many lines share a second.
@functools.lru_cache(maxsize=256)
def _text_encoding(content_type: str, types: ContentTypes) -> str | None:
    kind = media_type(content_type)
    return "CSV" if kind in types.csv else "JSON" if kind in types.json else None


@functools.lru_cache(maxsize=16)
def _inference_time(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def line(
    *,
    event_id: str,
    when: float,
    inference_id: str | None,
    request_type: str,
    request: bytes | None,
    response_type: str,
    response: bytes | None,
    types: ContentTypes,
) -> str:
    """The capture line of one invocation at epoch seconds ``when`` (no newline); a body that
    is None was not captured."""
    # Formatted by hand around JSON string literals: json.dumps of the nested dicts costs 8
    # times as much, on a thread that shares the GIL with the event loop.
    sides = []
    if request is not None:
        sides.append(_side("endpointInput", "INPUT", request_type, request, types))
    if response is not None:
        sides.append(_side("endpointOutput", "OUTPUT", response_type, response, types))
    inference = "" if inference_id is None else f'"inferenceId":{_quote(inference_id)},'
    inference_time = _inference_time(int(when))
    return (
        f'{{"captureData":{{{",".join(sides)}}},"eventMetadata":{{"eventId":{_quote(event_id)},'
        f'{inference}"inferenceTime":"{inference_time}"}},"eventVersion":"0"}}'
    )


def _side(key: str, mode: str, content_type: str, body: bytes, types: ContentTypes) -> str:
    data, encoding = encode(body, content_type, types)
    return (
        f'"{key}":{{"observedContentType":{_quote(content_type)},"mode":"{mode}",'
        f'"data":{_quote(data)},"encoding":"{encoding}"}}'
    )


def event_id() -> str:
    """A random version-4 UUID, made as uuid.uuid4() makes it at a fifth of the cost."""
    h = f"{random.getrandbits(128) & _V4_CLEAR | _V4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def file_key(endpoint: str, variant: str, when: float, unique: str) -> str:
    """Where a file whose first line is from ``when`` goes, under the destination, as SageMaker
    names them: ``<endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<unique>.jsonl``."""
    t = time.gmtime(when)
    millis = int(when * 1000) % 1000
    hour = time.strftime("%Y/%m/%d/%H", t)
    return f"{endpoint}/{variant}/{hour}/{t.tm_min:02d}-{t.tm_sec:02d}-{millis:03d}-{unique}.jsonl"
