"""Asynchronous inference: InvokeEndpointAsync's queue, and the loop that works it.

Accepting a request stores it before the 202 goes out, so nothing accepted is lost to a
restart (DESIGN.md §4). The loop takes each asynchronous endpoint's oldest requests, as many as
its instances run at once (MaxConcurrentInvocationsPerInstance each), reads the input, invokes an
instance as InvokeEndpoint does, writes the answer to the output location (a non-2xx answer or a
failure to the failure location), tells the SNS topics, and only then deletes the request. It
renews the leases of the requests it runs; those of a server that died run out, and the requests
are taken again.
"""

import asyncio
import base64
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from moorage.capture import destination
from moorage.http.client import (
    ClientResponse,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from moorage.jobs import objects
from moorage.jobs._loop import keep_working, now_ms
from moorage.metrics import Backlog, VariantMetrics
from moorage.routing import EndpointRoute, RoutingTable, VariantRoute
from moorage.store import AsyncInvocations, QueuedInvocation

log = logging.getLogger(__name__)

# Notifications carry the answer only up to this size (spec/LIMITS.md §4).
_NOTIFIED_BODY_LIMIT: Final = 128 * 1024
_GIVE_UP_AFTER: Final = 3  # attempts whose result could not be written


@dataclass(frozen=True, slots=True)
class AsyncRequest:
    """An InvokeEndpointAsync request, checked: ``headers`` go to the instance as they are.
    The input is at ``input_location`` or, inline, in ``body``."""

    input_location: str | None
    body: bytes | None
    headers: list[tuple[str, str]]
    inference_id: str | None
    output_extension: str | None
    filename: str | None
    ttl_s: int
    timeout_s: int


@dataclass(frozen=True, slots=True)
class Accepted:
    inference_id: str
    output_location: str
    failure_location: str


class AsyncInference:
    def __init__(
        self,
        queue: AsyncInvocations,
        table: RoutingTable,
        *,
        region: str,
        lease_s: float = 30.0,
        poll_s: float = 1.0,
    ) -> None:
        self._queue = queue
        self._table = table
        self._region = region
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # Requests under way here, by id, and how many per endpoint (lower-cased).
        self._running: dict[str, asyncio.Task[None]] = {}
        self._in_flight: dict[str, int] = {}
        self._backlogs: dict[str, Backlog] = {}

    def submit(self, route: EndpointRoute, request: AsyncRequest) -> Accepted:
        """Store an accepted request. Blocking: call it in a thread."""
        assert route.asynchronous is not None
        config = route.asynchronous.config
        id = str(uuid.uuid4())
        output_key = _key(request.output_extension, request.filename or f"{id}.out")
        failure_key = _key(request.output_extension, f"{id}-error.out")
        failure_path = config.s3_failure_path or config.s3_output_path
        accepted = Accepted(
            inference_id=request.inference_id or id,
            output_location=_location(config.s3_output_path, output_key),
            failure_location=_location(failure_path, failure_key),
        )
        now = now_ms()
        self._queue.add(
            id,
            route.name,
            now,
            now + request.ttl_s * 1000,
            {
                "InferenceId": accepted.inference_id,
                "InputLocation": request.input_location,
                # Kept in the row so that the request, inline body included, survives restarts.
                "Body": None if request.body is None else base64.b64encode(request.body).decode(),
                "Headers": request.headers,
                "TimeoutSeconds": request.timeout_s,
                "OutputPath": config.s3_output_path,
                "OutputKey": output_key,
                "FailurePath": failure_path,
                "FailureKey": failure_key,
            },
        )
        return accepted

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        await keep_working(
            self._take,
            self._renew,
            self._wake,
            lease_s=self._lease_s,
            poll_s=self._poll_s,
            what="asynchronous inference",
        )

    async def _renew(self, until_ms: int) -> None:
        await asyncio.to_thread(self._queue.renew, list(self._running), until_ms)

    async def stop(self) -> None:
        """Stop the requests under way; their leases run out and they run again later."""
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    def backlogs(self) -> dict[str, Backlog]:
        """Each asynchronous endpoint's queue, as of the last pass (for /metrics)."""
        return self._backlogs

    async def _take(self) -> None:
        routes = [route for route in self._table.routes() if route.asynchronous is not None]
        if not routes:
            self._backlogs = {}
            return
        counts = await asyncio.to_thread(self._queue.backlog, [r.name for r in routes])
        now = now_ms()
        backlogs = {}
        for route in routes:
            size, oldest_ms = counts.get(route.name.lower(), (0, None))
            age_s = (now - oldest_ms) / 1000 if oldest_ms is not None else 0.0
            backlogs[route.name] = Backlog(size, age_s, route.instance_count())
        self._backlogs = backlogs
        for route in routes:
            settings = route.asynchronous
            assert settings is not None
            endpoint = route.name.lower()
            room = settings.per_instance * route.instance_count() - self._in_flight.get(endpoint, 0)
            if room <= 0:
                continue
            lease_ms = int(self._lease_s * 1000)
            taken = await asyncio.to_thread(self._queue.take, endpoint, room, now_ms(), lease_ms)
            for item in taken:
                if item.id in self._running:
                    continue  # our own lease ran out while we still work on it
                self._in_flight[endpoint] = self._in_flight.get(endpoint, 0) + 1
                task = asyncio.ensure_future(self._process(item))
                self._running[item.id] = task
                task.add_done_callback(partial(self._done, item))

    def _done(self, item: QueuedInvocation, _task: "asyncio.Task[None]") -> None:
        self._running.pop(item.id, None)
        self._in_flight[item.endpoint] -= 1
        self._wake.set()  # room for the next request

    async def _process(self, item: QueuedInvocation) -> None:
        try:
            finished = await self._attempt(item)
        except Exception:
            log.exception("asynchronous request %s failed; it will be retried", item.id)
            finished = False
        await asyncio.to_thread(self._queue.finish if finished else self._queue.release, item.id)

    async def _attempt(self, item: QueuedInvocation) -> bool:
        """Run ``item``; True once its outcome is stored, False to leave it for later."""
        route = self._table.get(item.endpoint)
        variant = route.choose(None) if route is not None else None
        if route is None or variant is None:
            return False  # no instance now (being replaced, or the endpoint is updating)
        request = item.request
        metrics = variant.metrics
        if now_ms() > item.expires_ms:
            metrics.expired_requests.inc()
            message = "The request expired before it was processed (RequestTTLSeconds)."
            return await self._failed(route, variant, item, message.encode(), received=None)
        if (inline := request.get("Body")) is not None:
            body = base64.b64decode(inline)
        else:
            try:
                body = await asyncio.to_thread(objects.read, request["InputLocation"])
            except Exception as exc:
                metrics.request_download_failures.inc()
                text = f"Failed to read the input from {request['InputLocation']}: {exc}"
                return await self._failed(route, variant, item, text.encode(), received=None)
        instance = variant.pick()
        if instance is None:
            return False
        headers = [(name, value) for name, value in request["Headers"]]
        instance.outstanding += 1
        sent = time.perf_counter()
        try:
            answer = await instance.invoke(None, headers, [body], request["TimeoutSeconds"])
        except UpstreamConnectError:
            return False
        except UpstreamTimeout:
            message = (
                "Your invocation timed out while waiting for a response from container primary "
                f"(InvocationTimeoutSeconds {request['TimeoutSeconds']})."
            )
            _count_error(metrics, 500)
            return await self._failed(route, variant, item, message.encode(), received=None)
        except UpstreamError as exc:
            _count_error(metrics, 500)
            text = f"The instance failed before answering: {exc}"
            return await self._failed(route, variant, item, text.encode(), received=None)
        finally:
            instance.outstanding -= 1
        metrics.model_latency.observe((time.perf_counter() - sent) * 1e6)
        if not 200 <= answer.status < 300:
            _count_error(metrics, answer.status)
            return await self._failed(route, variant, item, bytes(answer.body), received=answer)
        metrics.async_processed.inc()
        return await self._conclude(route, variant, item, answer, failure=None)

    async def _failed(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        item: QueuedInvocation,
        text: bytes,
        *,
        received: ClientResponse | None,
    ) -> bool:
        variant.metrics.async_failures.inc()
        if received is None:
            received = ClientResponse(0, [("content-type", "text/plain")], text)
        reason = text.decode("utf-8", "replace")
        return await self._conclude(route, variant, item, received, failure=reason)

    async def _conclude(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        item: QueuedInvocation,
        answer: ClientResponse,
        *,
        failure: str | None,
    ) -> bool:
        """Write the outcome where the caller was told it would be, then notify. False: it could
        not be written, and the request stays queued (until it has failed so too often)."""
        request = item.request
        path, member, key = (
            (request["OutputPath"], "S3OutputPath", request["OutputKey"])
            if failure is None
            else (request["FailurePath"], "S3FailurePath", request["FailureKey"])
        )
        try:
            await asyncio.to_thread(
                destination(path, member).write,
                key,
                bytes(answer.body),
                answer.header("content-type"),
            )
        except Exception:
            variant.metrics.response_upload_failures.inc()
            log.exception("cannot write the outcome of asynchronous request %s", item.id)
            return item.attempts >= _GIVE_UP_AFTER
        await self._notify(route, variant.metrics, item, answer, failure=failure)
        return True

    async def _notify(
        self,
        route: EndpointRoute,
        metrics: VariantMetrics,
        item: QueuedInvocation,
        answer: ClientResponse | None,
        *,
        failure: str | None,
    ) -> None:
        assert route.asynchronous is not None
        config = route.asynchronous.config
        topic = config.error_topic if failure is not None else config.success_topic
        if not topic:
            return
        kind = "ERROR_NOTIFICATION_TOPIC" if failure is not None else "SUCCESS_NOTIFICATION_TOPIC"
        message = self._message(
            route.name, item, answer, failure, kind in config.include_response_in
        )
        try:
            await asyncio.to_thread(objects.publish, topic, json.dumps(message))
        except Exception:
            metrics.notification_failures.inc()
            log.exception("cannot notify %s of asynchronous request %s", topic, item.id)

    def _message(
        self,
        endpoint: str,
        item: QueuedInvocation,
        answer: ClientResponse | None,
        failure: str | None,
        with_body: bool,
    ) -> dict[str, Any]:
        """SageMaker's notification (spec/LIMITS.md §4)."""
        request = item.request
        content_type = dict(request["Headers"]).get("content-type")
        response: dict[str, Any] = {}
        if answer is not None and (answer_type := answer.header("content-type")):
            response["contentType"] = answer_type
        if failure is None:
            response["outputLocation"] = _location(request["OutputPath"], request["OutputKey"])
        else:
            response["failureLocation"] = _location(request["FailurePath"], request["FailureKey"])
        message: dict[str, Any] = {
            "awsRegion": self._region,
            "eventTime": _iso(now_ms()),
            "receivedTime": _iso(item.received_ms),
            "invocationStatus": "Failed" if failure is not None else "Completed",
            "requestParameters": {
                "endpointName": endpoint,
                **({"inputLocation": location} if (location := request["InputLocation"]) else {}),
                **({"contentType": content_type} if content_type else {}),
            },
            "responseParameters": response,
            "inferenceId": request["InferenceId"],
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }
        if failure is not None:
            message["failureReason"] = failure
        if with_body and answer is not None and len(answer.body) <= _NOTIFIED_BODY_LIMIT:
            message["responseBody"] = {
                "content": base64.b64encode(answer.body).decode(),
                "encoding": "BASE64",
            }
        return message


def _count_error(metrics: VariantMetrics, status: int) -> None:
    metrics.model_errors.inc()
    (metrics.errors_4xx if 400 <= status < 500 else metrics.errors_5xx).inc()


def _key(extension: str | None, name: str) -> str:
    return f"{extension.strip('/')}/{name}" if extension else name


def _location(path: str, key: str) -> str:
    return f"{path.rstrip('/')}/{key}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
