"""The runtime API (rest-json): InvokeEndpoint, proxied to an instance over the container contract.

The hot path. It reads only the in-memory routing table, keeps bodies as bytes, and chains
futures instead of creating tasks. Header mapping is spec/API.md §6.1 both ways; errors are
§6.4's.
"""

import asyncio
import time
from collections.abc import Sequence
from functools import partial
from typing import Final

from moorage.api.errors import runtime_error
from moorage.contract import (
    CUSTOM_ATTRIBUTES,
    FORWARDED_REQUEST_HEADERS,
    INFERENCE_ID,
    RELAYED_RESPONSE_HEADERS,
    TARGET_MODEL,
)
from moorage.http import Request, Response
from moorage.http.client import (
    ClientResponse,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamTimeout,
)
from moorage.routing import EndpointRoute, InstanceRoute, RoutingTable, VariantRoute

TARGET_VARIANT: Final = "x-amzn-sagemaker-target-variant"
INFERENCE_COMPONENT: Final = "x-amzn-sagemaker-inference-component"
TARGET_CONTAINER: Final = "x-amzn-sagemaker-target-container-hostname"
INVOKED_VARIANT: Final = "x-Amzn-Invoked-Production-Variant"
_HOSTNAME: Final = "primary"
_MAX_ATTRIBUTES: Final = 1024


class RuntimeApi:
    def __init__(self, table: RoutingTable, *, region: str, account: str, timeout_s: float) -> None:
        self._table = table
        self._region = region
        self._account = account
        self._timeout_s = timeout_s

    def invoke(self, request: Request, endpoint: str) -> "Response | asyncio.Future[Response]":
        started = time.perf_counter()
        route = self._table.get(endpoint)
        if route is None:
            return runtime_error(
                400,
                "ValidationError",
                f"Endpoint {endpoint} of account {self._account} not found.",
            )
        headers = request.headers
        problem = self._check_headers(headers, route)
        if problem is not None:
            return runtime_error(400, "ValidationError", problem)
        variant = route.choose(headers.get(TARGET_VARIANT))
        instance = variant.pick() if variant is not None else None
        if variant is None or instance is None:
            return runtime_error(
                503,
                "ServiceUnavailable",
                f"Endpoint {endpoint} has no healthy instance to serve this request; "
                "retry shortly.",
            )
        forwarded = [(name, value) for name, value in headers.items() if name in _FORWARDED]
        result: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._send(result, route, variant, instance, forwarded, request.parts, started, True)
        return result

    def _check_headers(self, headers: dict[str, str], route: EndpointRoute) -> str | None:
        attributes = headers.get(CUSTOM_ATTRIBUTES)
        if attributes is not None and (
            len(attributes) > _MAX_ATTRIBUTES or not attributes.isascii()
        ):
            return "CustomAttributes must be at most 1024 visible ASCII characters."
        inference_id = headers.get(INFERENCE_ID)
        if inference_id is not None and not 1 <= len(inference_id) <= 64:
            return "InferenceId must be 1 to 64 characters long."
        target_variant = headers.get(TARGET_VARIANT)
        if target_variant is not None and not route.has_variant(target_variant):
            return f"The variant {target_variant} does not exist on endpoint {route.name}."
        if INFERENCE_COMPONENT in headers:
            return "Inference components are not supported by moorage."
        if TARGET_CONTAINER in headers:
            return (
                f"Endpoint {route.name} is not an inference pipeline in Direct mode; "
                "do not send TargetContainerHostname."
            )
        if TARGET_MODEL in headers and not route.is_multi_model:
            return f"Endpoint {route.name} is not a multi-model endpoint; do not send TargetModel."
        return None

    def _send(
        self,
        result: "asyncio.Future[Response]",
        route: EndpointRoute,
        variant: VariantRoute,
        instance: InstanceRoute,
        headers: list[tuple[str, str]],
        body: Sequence[bytes],
        started: float,
        may_retry: bool,
    ) -> None:
        instance.outstanding += 1
        sent = time.perf_counter()
        upstream = instance.pool.request(
            "POST", "/invocations", headers, body, timeout=self._timeout_s
        )
        upstream.add_done_callback(
            partial(
                self._on_answer, result, route, variant, instance, headers, body, started, sent,
                may_retry,
            )
        )  # fmt: skip

    def _on_answer(
        self,
        result: "asyncio.Future[Response]",
        route: EndpointRoute,
        variant: VariantRoute,
        instance: InstanceRoute,
        headers: list[tuple[str, str]],
        body: Sequence[bytes],
        started: float,
        sent: float,
        may_retry: bool,
        upstream: "asyncio.Future[ClientResponse]",
    ) -> None:
        instance.outstanding -= 1
        if result.done():
            return
        finished = time.perf_counter()
        metrics = variant.metrics
        exc = upstream.exception()
        if isinstance(exc, UpstreamConnectError) and may_retry:
            # Nothing reached the instance (it just died or is being replaced): another
            # instance of the same variant may take the request.
            other = _another(variant, instance)
            if other is not None:
                self._send(result, route, variant, other, headers, body, started, False)
                return
        metrics.invocations.inc()
        if variant.instances:
            metrics.invocations_per_instance.inc(1 / len(variant.instances))
        model_us = (finished - sent) * 1e6
        metrics.model_latency.observe(model_us)
        metrics.overhead_latency.observe(max(0.0, (finished - started) * 1e6 - model_us))
        if exc is None:
            answer = upstream.result()
            if 200 <= answer.status < 300:
                result.set_result(self._success(answer, variant.name))
                return
            status, text = answer.status, answer.body.decode("utf-8", "replace")
        elif isinstance(exc, UpstreamTimeout):
            status = 0
            text = (
                f"Your invocation timed out while waiting for a response from container "
                f"{_HOSTNAME}. Review the latency metrics for each container in Amazon "
                "CloudWatch, resolve the issue, and try again."
            )
        elif isinstance(exc, UpstreamConnectError):
            metrics.errors_5xx.inc()
            result.set_result(
                runtime_error(
                    503,
                    "ServiceUnavailable",
                    f"No instance of endpoint {route.name} is reachable; retry shortly.",
                )
            )
            return
        elif isinstance(exc, UpstreamClosed):
            status, text = 0, f"The instance closed the connection: {exc}"
        else:
            result.set_exception(exc)
            return
        metrics.model_errors.inc()
        (metrics.errors_4xx if 400 <= status < 500 else metrics.errors_5xx).inc()
        result.set_result(self._model_error(route.name, variant.name, instance, status, text))

    def _success(self, answer: ClientResponse, variant: str) -> Response:
        headers = [(INVOKED_VARIANT, variant)]
        for name, value in answer.headers:
            if name in RELAYED_RESPONSE_HEADERS:
                headers.append((name, value))
        return Response(200, answer.body, headers)

    def _model_error(
        self, endpoint: str, variant: str, instance: InstanceRoute, status: int, text: str
    ) -> Response:
        kind = "client" if 400 <= status < 500 else "server"
        message = (
            f'Received {kind} error ({status}) from {_HOSTNAME} with message "{text}". See '
            f"https://{self._region}.console.aws.amazon.com/cloudwatch/home?region="
            f"{self._region}#logEventViewer:group=/aws/sagemaker/Endpoints/{endpoint} in "
            f"account {self._account} for more information."
        )
        return runtime_error(
            424,
            "ModelError",
            message,
            OriginalStatusCode=status,
            OriginalMessage=text,
            LogStreamArn=instance.log_stream_arn,
        )


_FORWARDED: Final = FORWARDED_REQUEST_HEADERS


def _another(variant: VariantRoute, failed: InstanceRoute) -> InstanceRoute | None:
    others = [i for i in variant.instances if i is not failed]
    return min(others, key=lambda i: i.outstanding) if others else None
