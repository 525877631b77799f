"""Capturing invocations: the invocation path's part (:meth:`VariantCapture.record`) and the
writer's (:class:`CaptureWriter`).

On the event loop a sampled invocation costs a copy of its bodies (their buffers are lent
again once the answer is out) and one append to a deque. Everything else (encoding, JSON, file
names, writing) happens on the writer's thread in batches: every ``flush_interval_s``, sooner
when ``WAKE_BYTES`` are waiting, and at close. A write that fails is logged and its lines are
dropped; when the writer is ``MAX_PENDING_BYTES`` behind (a slow or unreachable destination),
invocations go uncaptured rather than piling up in memory, as SageMaker stops capturing when its
disk fills. Neither ever fails or delays an invocation.
"""

import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from moorage.capture import records
from moorage.capture.destinations import Destination, destination
from moorage.contract import CONTENT_TYPE, INFERENCE_ID
from moorage.domain import CaptureMode, DataCaptureConfig, EndpointConfig
from moorage.errors import ValidationError
from moorage.http.client import ClientResponse

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S: Final = 5.0
WAKE_BYTES: Final = 8 * 2**20
MAX_PENDING_BYTES: Final = 64 * 2**20
# How long stopping waits for the last files (a destination may be slow or unreachable).
_CLOSE_WAIT_S: Final = 30.0
_INPUT: Final = frozenset({CaptureMode.INPUT, CaptureMode.INPUT_AND_OUTPUT})
_OUTPUT: Final = frozenset({CaptureMode.OUTPUT, CaptureMode.INPUT_AND_OUTPUT})


def check_config(config: EndpointConfig) -> None:
    """Raise ValidationError if moorage cannot capture as ``config``'s DataCaptureConfig says."""
    capture = config.data_capture_config
    if capture is None:
        return
    destination(capture.destination_s3_uri)
    for variant in config.production_variants:
        if variant.is_serverless:
            raise ValidationError(
                f"Variant '{variant.variant_name}' is serverless, and serverless endpoints do "
                "not support data capture (DataCaptureConfig)."
            )


@dataclass(frozen=True, eq=False, slots=True)
class Target:
    """Where one variant's lines go, and which bodies are written as text."""

    endpoint: str
    variant: str
    destination: Destination
    types: records.ContentTypes


# (target, epoch seconds, bytes held, request headers as forwarded, request body or None,
# response headers, response body or None). A plain tuple: a NamedTuple costs 15 times as much
# to make, on the event loop.
_Event = tuple[
    Target, float, int, Sequence[tuple[str, str]], bytes | None, list[tuple[str, str]], bytes | None
]


class VariantCapture:
    """One variant's sampling and capture modes, and the invocation path's hook."""

    __slots__ = ("_percentage", "_request", "_response", "_target", "_writer")

    def __init__(
        self,
        writer: "CaptureWriter",
        target: Target,
        percentage: int,
        *,
        request: bool,
        response: bool,
    ) -> None:
        self._writer = writer
        self._target = target
        self._percentage = percentage
        self._request = request
        self._response = response

    @property
    def captures_request(self) -> bool:
        """Whether request bodies are read, after their answer: they must still be there."""
        return self._request

    def record(
        self,
        headers: Sequence[tuple[str, str]],
        body: Sequence[bytes | memoryview],
        answer: ClientResponse,
    ) -> None:
        """Queue a successful invocation if it is sampled. ``headers`` are the request's as
        forwarded (lower-case names), ``body`` its parts. Called on the event loop; the header
        lists, which nothing changes afterwards, are read later on the writer's thread."""
        percentage = self._percentage
        if percentage < 100 and random.random() * 100 >= percentage:
            return
        request = response = None
        size = 0
        if self._request:
            request = b"".join(body)
            size = len(request)
        if self._response:
            response = bytes(answer.body)
            size += len(response)
        self._writer.put(
            (self._target, time.time(), size, headers, request, answer.headers, response)
        )


class CaptureWriter:
    """Writes every variant's captured invocations, in batches, on its own thread."""

    def __init__(self, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._interval = flush_interval_s
        self._events: deque[_Event] = deque()
        # Bytes queued (counted by the event loop only) and taken (by the writer only): each
        # counter has one writer, so their difference is the backlog without a lock.
        self._queued = 0
        self._taken = 0
        self._dropped = 0
        self._reported_dropped = 0
        self._wake = threading.Event()
        self._is_closing = False
        self._thread = threading.Thread(target=self._run, name="moorage-capture", daemon=True)
        self._thread.start()

    def tap(
        self, endpoint: str, variant: str, config: DataCaptureConfig | None
    ) -> VariantCapture | None:
        """The hook for a variant's invocations, or None when nothing is to be captured."""
        if config is None or not config.enable_capture or config.initial_sampling_percentage <= 0:
            return None
        types = records.ContentTypes.of(config.csv_content_types, config.json_content_types)
        target = Target(endpoint, variant, destination(config.destination_s3_uri), types)
        return VariantCapture(
            self,
            target,
            config.initial_sampling_percentage,
            request=bool(config.capture_modes & _INPUT),
            response=bool(config.capture_modes & _OUTPUT),
        )

    def put(self, event: _Event) -> None:
        if self._queued - self._taken >= MAX_PENDING_BYTES:
            self._dropped += 1
            return
        self._events.append(event)
        self._queued += event[2]
        if self._queued - self._taken >= WAKE_BYTES:
            self._wake.set()

    def close(self) -> None:
        """Write what is queued and stop (blocks: call it off the event loop)."""
        self._is_closing = True
        self._wake.set()
        self._thread.join(_CLOSE_WAIT_S)
        if self._thread.is_alive():
            log.warning("data capture: the last files were not written within %gs", _CLOSE_WAIT_S)

    def _run(self) -> None:
        while not self._is_closing:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._flush_logged()
        self._flush_logged()

    def _flush_logged(self) -> None:
        # The thread must outlive a bug in a batch, or capture would stop for good.
        try:
            self._flush()
        except Exception:
            log.exception("data capture: writing a batch failed")

    def _flush(self) -> None:
        batches: dict[tuple[Target, int], list[_Event]] = {}
        events = self._events
        # Only this thread takes from the deque, so it cannot empty between test and pop.
        while events:
            event = events.popleft()
            target, when, size = event[:3]
            self._taken += size
            batches.setdefault((target, int(when // 3600)), []).append(event)
        dropped = self._dropped
        if dropped != self._reported_dropped:
            log.warning(
                "data capture is behind its destinations: %d invocations not captured so far",
                dropped,
            )
            self._reported_dropped = dropped
        for (target, _), batch in batches.items():
            self._write(target, batch)

    @staticmethod
    def _write(target: Target, batch: list[_Event]) -> None:
        key = records.file_key(target.endpoint, target.variant, batch[0][1], str(uuid.uuid4()))
        lines = [_line(event) for event in batch]
        try:
            target.destination.write(key, ("\n".join(lines) + "\n").encode())
        except Exception as exc:  # whatever a destination raises is only logged
            log.warning(
                "data capture of %s/%s: writing %s to %s failed, %d invocations lost: %s",
                target.endpoint, target.variant, key, target.destination.uri, len(batch), exc,
            )  # fmt: skip


def _line(event: _Event) -> str:
    target, when, _, request_headers, request, response_headers, response = event
    return records.line(
        event_id=records.event_id(),
        when=when,
        inference_id=_header(request_headers, INFERENCE_ID),
        request_type=_header(request_headers, CONTENT_TYPE) or records.UNLABELLED,
        request=request,
        response_type=_header(response_headers, CONTENT_TYPE) or records.UNLABELLED,
        response=response,
        types=target.types,
    )


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None
