"""The runtime API (rest-json): InvokeEndpoint, proxied to an instance over the container contract.

The hot path. It reads only the in-memory routing table, keeps bodies as bytes, and chains
futures instead of creating tasks. Header mapping is spec/API.md §6.1 both ways; errors are
§6.4's. Requests for a multi-model variant (``TargetModel``) go through ``multi_model``.
"""

import asyncio
import re
import time
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Final

from moorage.api import eventstream
from moorage.api._answers import Answers
from moorage.api.errors import runtime_error
from moorage.api.multi_model import MultiModelInvoker
from moorage.contract import (
    ACCEPT,
    CONTENT_TYPE,
    CUSTOM_ATTRIBUTES,
    FORWARDED_REQUEST_HEADERS,
    INFERENCE_ID,
    SESSION_ID,
    TARGET_MODEL,
)
from moorage.errors import MoorageError
from moorage.http import Request, Response
from moorage.http.client import (
    BodyStream,
    ClientResponse,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamTimeout,
)
from moorage.routing import (
    NEW_SESSION,
    EndpointRoute,
    InstanceRoute,
    ModelLoader,
    RoutingTable,
    ServerlessRoute,
    Sessions,
    VariantRoute,
)

TARGET_VARIANT: Final = "x-amzn-sagemaker-target-variant"
INFERENCE_COMPONENT: Final = "x-amzn-sagemaker-inference-component"
TARGET_CONTAINER: Final = "x-amzn-sagemaker-target-container-hostname"
PREFIX_AWARE_ID: Final = "x-amzn-sagemaker-prefix-aware-id"
STREAM_ACCEPT: Final = "x-amzn-sagemaker-accept"
STREAM_CONTENT_TYPE: Final = "X-Amzn-SageMaker-Content-Type"
_MAX_ATTRIBUTES: Final = 1024
_SESSION: Final = re.compile(r"(?=.{1,256}$)[a-zA-Z0-9](-*[a-zA-Z0-9])*")


class RuntimeApi:
    def __init__(
        self,
        table: RoutingTable,
        loader: ModelLoader,
        *,
        region: str,
        account: str,
        timeout_s: float,
        load_wait_s: float,
    ) -> None:
        self._table = table
        # Kept: asyncio.get_running_loop() costs a getpid() system call on Python 3.11.
        self._loop = asyncio.get_running_loop()
        self._account = account
        self._timeout_s = timeout_s
        self._load_wait_s = load_wait_s
        # Requests waiting for a serverless cold start (the loop keeps only weak references).
        self._waiting: set[asyncio.Task[None]] = set()
        self._answers = Answers(region=region, account=account)
        self._models = MultiModelInvoker(
            loader, self._answers, timeout_s=timeout_s, load_wait_s=load_wait_s
        )

    def invoke(
        self, request: Request, endpoint: str, stream: bool = False
    ) -> "Response | asyncio.Future[Response]":
        """InvokeEndpoint; ``stream``: a bring-your-own server's answer comes back as it is
        written (``Response.stream``), for InvokeEndpointWithResponseStream."""
        started = time.perf_counter()
        route = self._table.get(endpoint)
        if route is None:
            return runtime_error(
                400,
                "ValidationError",
                f"Endpoint {endpoint} of account {self._account} not found.",
            )
        if route.asynchronous is not None:
            return runtime_error(
                400,
                "ValidationError",
                f"Endpoint {route.name} is an asynchronous endpoint; call InvokeEndpointAsync.",
            )
        headers = request.headers
        problem = self._check_headers(headers, route)
        if problem is not None:
            return runtime_error(400, "ValidationError", problem)
        session_id = headers.get(SESSION_ID)
        held = (
            route.sessions.find(session_id)
            if session_id is not None and session_id != NEW_SESSION
            else None
        )
        variant: VariantRoute | None
        instance: InstanceRoute | None
        if held is not None:
            variant, instance = held
        else:
            variant = route.choose(headers.get(TARGET_VARIANT))
            if variant is not None and variant.serverless is not None:
                return self._invoke_serverless(route, variant, variant.serverless, request, started)
            if variant is not None and variant.multi_model is not None:
                model = headers[TARGET_MODEL]
                forwarded = [(name, value) for name, value in headers.items() if name in _FORWARDED]
                result: asyncio.Future[Response] = self._loop.create_future()
                self._models.invoke(
                    result, route.name, variant, variant.multi_model, model, forwarded,
                    request.parts, started,
                )  # fmt: skip
                return result
            if variant is None:
                instance = None
            elif variant.prefix is None:
                # pick() itself: pick_for() would call it, ~100 ns more per request.
                instance = variant.pick()
            else:
                instance = variant.pick_for(request.parts, headers.get(PREFIX_AWARE_ID))
        if variant is None or instance is None:
            return _no_instance(endpoint)
        receiver = instance
        if route.container_hostnames:
            receiver = instance.containers.get(headers[TARGET_CONTAINER], instance)
        forwarded = [(name, value) for name, value in headers.items() if name in _FORWARDED]
        result = self._loop.create_future()
        if session_id is not None:
            # Registered first, so it runs before the answer is written and the session's
            # next request finds the session.
            result.add_done_callback(partial(_note_sessions, route.sessions, variant, instance))
        # A session's request must reach its instance, not be retried on another.
        self._send(
            result, route, variant, receiver, forwarded, request.parts, started,
            session_id is None, stream,
        )  # fmt: skip
        return result

    def invoke_stream(
        self, request: Request, endpoint: str
    ) -> "Response | asyncio.Future[Response]":
        """InvokeEndpointWithResponseStream: an invocation whose answer goes back as event-stream
        PayloadParts (spec/API.md §6.3). Errors before the first byte are ordinary responses.

        A bring-your-own server's answer is relayed as it writes it, one PayloadPart per piece
        read; the built-in runtime answers whole, so its answer is one piece.
        """
        route = self._table.get(endpoint)
        if route is not None and route.is_multi_model:
            return runtime_error(
                400,
                "ValidationError",
                f"Endpoint {endpoint} is a multi-model endpoint; response streaming is not "
                "supported for multi-model endpoints.",
            )
        headers = request.headers
        if headers.get(SESSION_ID) == NEW_SESSION:
            return runtime_error(
                400,
                "ValidationError",
                "A stateful session cannot be opened by InvokeEndpointWithResponseStream; open "
                "it with InvokeEndpoint (SessionId NEW_SESSION), then stream within it.",
            )
        if STREAM_ACCEPT in headers:
            headers[ACCEPT] = headers.pop(STREAM_ACCEPT)
        answer = self.invoke(request, endpoint, stream=True)
        if isinstance(answer, Response):
            return _as_stream(answer)
        streamed: asyncio.Future[Response] = self._loop.create_future()
        answer.add_done_callback(partial(_relay_as_stream, streamed))
        return streamed

    def _invoke_serverless(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        serverless: ServerlessRoute,
        request: Request,
        started: float,
    ) -> "Response | asyncio.Future[Response]":
        """SageMaker's serverless limits (4 MB, MaxConcurrency), and a cold start when no
        instance runs."""
        size = sum(len(part) for part in request.parts)
        if size > SERVERLESS_MAX_PAYLOAD:
            return runtime_error(
                400,
                "ValidationError",
                f"Request body of {size} bytes is over the {SERVERLESS_MAX_PAYLOAD} bytes "
                f"serverless endpoint {route.name} accepts.",
            )
        if serverless.in_flight >= serverless.max_concurrency:
            return runtime_error(
                400,
                "ThrottlingException",
                f"Endpoint {route.name} is serving MaxConcurrency ({serverless.max_concurrency}) "
                "requests; retry later.",
            )
        serverless.in_flight += 1
        result: asyncio.Future[Response] = self._loop.create_future()
        result.add_done_callback(partial(_serverless_done, serverless, self._loop))
        forwarded = [(name, value) for name, value in request.headers.items() if name in _FORWARDED]
        instance = variant.pick_for(request.parts, request.headers.get(PREFIX_AWARE_ID))
        if instance is not None:
            self._send(result, route, variant, instance, forwarded, request.parts, started, True)
        else:
            waiting = asyncio.ensure_future(
                self._after_cold_start(result, route, variant, serverless, forwarded, request)
            )
            self._waiting.add(waiting)
            waiting.add_done_callback(self._waiting.discard)
        return result

    async def _after_cold_start(
        self,
        result: "asyncio.Future[Response]",
        route: EndpointRoute,
        variant: VariantRoute,
        serverless: ServerlessRoute,
        headers: list[tuple[str, str]],
        request: Request,
    ) -> None:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.shield(serverless.start()), self._load_wait_s)
        except TimeoutError:
            result.set_result(
                runtime_error(
                    429,
                    "ModelNotReadyException",
                    f"Endpoint {route.name} is still starting an instance; retry shortly.",
                )
            )
            return
        except MoorageError as exc:
            result.set_result(
                runtime_error(
                    503,
                    "ServiceUnavailable",
                    f"Endpoint {route.name} could not start an instance: {exc}",
                )
            )
            return
        instance = variant.pick()
        if instance is None:
            result.set_result(_no_instance(route.name))
            return
        self._send(result, route, variant, instance, headers, request.parts, started, True)

    def _check_headers(self, headers: dict[str, str], route: EndpointRoute) -> str | None:
        attributes = headers.get(CUSTOM_ATTRIBUTES)
        if attributes is not None and (
            len(attributes) > _MAX_ATTRIBUTES or not attributes.isascii()
        ):
            return "CustomAttributes must be at most 1024 visible ASCII characters."
        content_type, accept = headers.get(CONTENT_TYPE, ""), headers.get(ACCEPT, "")
        if len(content_type) + len(accept) > _MAX_ATTRIBUTES or not (
            content_type.isascii() and accept.isascii()
        ):
            for name, value in ((CONTENT_TYPE, content_type), (ACCEPT, accept)):
                if len(value) > _MAX_ATTRIBUTES or not value.isascii():
                    return f"Header {name} must be at most 1024 ASCII characters."
        inference_id = headers.get(INFERENCE_ID)
        if inference_id is not None and not is_print_id(inference_id):
            return (
                "InferenceId must be 1 to 64 printable ASCII characters, not starting with a space."
            )
        target_variant = headers.get(TARGET_VARIANT)
        if target_variant is not None and not route.has_variant(target_variant):
            return f"The variant {target_variant} does not exist on endpoint {route.name}."
        if INFERENCE_COMPONENT in headers:
            return "Inference components are not supported by moorage."
        session_id = headers.get(SESSION_ID)
        if session_id is not None and not (
            session_id == NEW_SESSION or _SESSION.fullmatch(session_id)
        ):
            return (
                f"SessionId {session_id!r} must be NEW_SESSION or a session's id: up to 256 "
                "letters, digits and hyphens, starting and ending with a letter or digit."
            )
        prefix_id = headers.get(PREFIX_AWARE_ID)
        if prefix_id is not None and not is_print_id(prefix_id):
            return (
                "PrefixAwareId must be 1 to 64 printable ASCII characters, not starting with a "
                "space."
            )
        if route.container_hostnames:
            if problem := _direct_problem(route, headers.get(TARGET_CONTAINER)):
                return problem
        elif TARGET_CONTAINER in headers:
            return (
                f"Endpoint {route.name} is not an inference pipeline in Direct mode; "
                "do not send TargetContainerHostname."
            )
        target = headers.get(TARGET_MODEL)
        if route.is_multi_model:
            if target is None:
                return (
                    f"Endpoint {route.name} is a multi-model endpoint; send TargetModel, the "
                    "path of the model relative to the model's ModelDataUrl."
                )
            return self._models.check_target(target)
        if target is not None:
            return f"Endpoint {route.name} is not a multi-model endpoint; do not send TargetModel."
        return None

    def _send(
        self,
        result: "asyncio.Future[Response]",
        route: EndpointRoute,
        variant: VariantRoute,
        instance: InstanceRoute,
        headers: list[tuple[str, str]],
        body: Sequence[bytes | memoryview],
        started: float,
        may_retry: bool,
        stream: bool = False,
    ) -> None:
        instance.outstanding += 1
        sent = time.perf_counter()
        upstream = instance.invoke(None, headers, body, self._timeout_s, stream)
        upstream.add_done_callback(
            partial(
                self._on_answer, result, route, variant, instance, headers, body, started, sent,
                may_retry, stream,
            )
        )  # fmt: skip

    def _on_answer(
        self,
        result: "asyncio.Future[Response]",
        route: EndpointRoute,
        variant: VariantRoute,
        instance: InstanceRoute,
        headers: list[tuple[str, str]],
        body: Sequence[bytes | memoryview],
        started: float,
        sent: float,
        may_retry: bool,
        stream: bool,
        upstream: "asyncio.Future[ClientResponse]",
    ) -> None:
        instance.outstanding -= 1
        if result.done():
            if not upstream.cancelled() and upstream.exception() is None:
                if (unread := upstream.result().stream) is not None:
                    unread.close()
            return
        if may_retry and isinstance(upstream.exception(), UpstreamConnectError):
            # Nothing reached the instance (it just died or is being replaced): another
            # instance of the same variant may take the request.
            other = _another(variant, instance)
            if other is not None:
                self._send(result, route, variant, other, headers, body, started, False, stream)
                return
        self._answers.settle(
            result, route.name, variant, instance, upstream, started, sent, headers, body
        )


_FORWARDED: Final = FORWARDED_REQUEST_HEADERS
# A serverless endpoint's limit on request bodies (spec/LIMITS.md §3).
SERVERLESS_MAX_PAYLOAD: Final = 4 * 1024 * 1024


def is_print_id(value: str) -> bool:
    """Whether ``value`` matches botocore's ``\\A\\S[\\p{Print}]*\\z`` in 1 to 64 characters
    (InferenceId, PrefixAwareId). Java's ``\\p{Print}`` is ASCII only."""
    return (
        0 < len(value) <= 64 and value.isascii() and value.isprintable() and not value[0].isspace()
    )


def _note_sessions(
    sessions: Sessions,
    variant: VariantRoute,
    instance: InstanceRoute,
    result: "asyncio.Future[Response]",
) -> None:
    if not result.cancelled() and result.exception() is None:
        answer = result.result()
        if answer.status == 200:
            sessions.note(answer.headers, variant, instance)


def _direct_problem(route: EndpointRoute, hostname: str | None) -> str | None:
    names = ", ".join(sorted(route.container_hostnames))
    if hostname is None:
        return (
            f"Endpoint {route.name} is an inference pipeline in Direct mode; send "
            f"TargetContainerHostname, one of: {names}."
        )
    if hostname not in route.container_hostnames:
        return (
            f"Endpoint {route.name} has no container with hostname {hostname!r}; its "
            f"containers are: {names}."
        )
    return None


def _no_instance(endpoint: str) -> Response:
    return runtime_error(
        503,
        "ServiceUnavailable",
        f"Endpoint {endpoint} has no healthy instance to serve this request; retry shortly.",
    )


def _as_stream(answer: Response) -> Response:
    if answer.status != 200:
        return answer
    headers = [("Content-Type", eventstream.CONTENT_TYPE)]
    for name, value in answer.headers:
        headers.append((STREAM_CONTENT_TYPE if name.lower() == CONTENT_TYPE else name, value))
    if answer.stream is not None:
        return Response(200, b"", headers, stream=_events(answer.stream))
    return Response(200, eventstream.payload_parts(answer.body), headers)


async def _events(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The pieces of a streamed answer as PayloadParts; a failure after the first byte as the
    error event SageMaker sends then (spec/API.md §6.3)."""
    try:
        async for piece in body:
            yield eventstream.payload_parts(piece)
    except UpstreamTimeout:
        yield eventstream.stream_error(
            "ModelStreamError",
            "The model did not send the rest of its answer in time.",
            "ModelInvocationTimeExceeded",
        )
    except UpstreamClosed:
        yield eventstream.stream_error(
            "ModelStreamError",
            "The connection to the model broke before its answer was complete.",
            "StreamBroken",
        )
    except Exception as exc:
        yield eventstream.stream_error("InternalStreamFailure", f"The stream failed: {exc}")
    finally:
        if isinstance(body, BodyStream):
            body.close()


def _relay_as_stream(
    streamed: "asyncio.Future[Response]", answer: "asyncio.Future[Response]"
) -> None:
    if streamed.done():
        return
    if answer.cancelled():
        streamed.cancel()
    elif (exc := answer.exception()) is not None:
        streamed.set_exception(exc)
    else:
        streamed.set_result(_as_stream(answer.result()))


def _serverless_done(
    serverless: ServerlessRoute,
    loop: asyncio.AbstractEventLoop,
    _result: "asyncio.Future[Response]",
) -> None:
    serverless.in_flight -= 1
    serverless.last_used = loop.time()


def _another(variant: VariantRoute, failed: InstanceRoute) -> InstanceRoute | None:
    others = [i for i in variant.instances if i is not failed]
    return min(others, key=lambda i: i.outstanding) if others else None
