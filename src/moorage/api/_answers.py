"""An instance's answer to an invocation → the caller's response and the variant's metrics.

Shared by the single-model path (``/invocations``) and the multi-model one
(``/models/<key>/invoke``): success relays the body and the headers of spec/API.md §6.1, a
non-2xx answer or a broken exchange becomes SageMaker's ``ModelError`` (§6.4).
"""

import asyncio
import time
from collections.abc import Sequence
from typing import Final

from moorage import errors
from moorage.api.errors import request_id, runtime_error
from moorage.contract import RELAYED_RESPONSE_HEADERS
from moorage.http import Response
from moorage.http.client import (
    ClientResponse,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamTimeout,
)
from moorage.routing import InstanceRoute, VariantRoute

INVOKED_VARIANT: Final = "x-Amzn-Invoked-Production-Variant"
_HOSTNAME: Final = "primary"


class Answers:
    def __init__(self, *, region: str, account: str) -> None:
        self._region = region
        self._account = account

    def settle(
        self,
        result: "asyncio.Future[Response]",
        endpoint: str,
        variant: VariantRoute,
        instance: InstanceRoute,
        upstream: "asyncio.Future[ClientResponse]",
        started: float,
        sent: float,
        headers: Sequence[tuple[str, str]],
        body: Sequence[bytes | memoryview],
    ) -> None:
        """Answer ``result`` from the instance's ``upstream`` answer; record the metrics, and
        the request (``headers`` as forwarded, ``body``) if the variant captures data."""
        finished = time.perf_counter()
        metrics = variant.metrics
        exc = upstream.exception()
        metrics.invocations.inc()
        if variant.instances:
            metrics.invocations_per_instance.inc(1 / len(variant.instances))
        model_us = (finished - sent) * 1e6
        metrics.model_latency.observe(model_us)
        metrics.overhead_latency.observe(max(0.0, (finished - started) * 1e6 - model_us))
        if exc is None:
            answer = upstream.result()
            if 200 <= answer.status < 300:
                result.set_result(self.success(answer, variant.name))
                # Successful invocations only: a capture line has no room for an error, and
                # Model Monitor would take the error's body for a prediction. A streamed answer
                # is not captured: it is still arriving.
                capture = variant.capture
                if capture is not None and answer.stream is None:
                    capture.record(headers, body, answer)
                return
            status, text = answer.status, bytes(answer.body).decode("utf-8", "replace")
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
                    f"No instance of endpoint {endpoint} is reachable; retry shortly.",
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
        result.set_result(self.model_error(endpoint, variant.name, instance, status, text))

    def failure(
        self,
        result: "asyncio.Future[Response]",
        endpoint: str,
        variant: VariantRoute,
        instance: InstanceRoute,
        exc: BaseException,
    ) -> None:
        """Answer ``result`` for a request that never reached the model (a failed load)."""
        metrics = variant.metrics
        if isinstance(exc, errors.ModelError):
            metrics.model_errors.inc()
            (metrics.errors_4xx if 400 <= exc.status < 500 else metrics.errors_5xx).inc()
            text = exc.body.decode("utf-8", "replace")
            result.set_result(self.model_error(endpoint, variant.name, instance, exc.status, text))
        elif isinstance(exc, errors.ValidationError):
            metrics.errors_4xx.inc()
            result.set_result(runtime_error(400, "ValidationError", str(exc)))
        elif isinstance(exc, errors.InstanceUnavailable):
            metrics.errors_5xx.inc()
            result.set_result(runtime_error(503, "ServiceUnavailable", f"{exc} Retry shortly."))
        else:
            result.set_exception(exc)

    def success(self, answer: ClientResponse, variant: str) -> Response:
        headers = [(INVOKED_VARIANT, variant), ("x-amzn-RequestId", request_id())]
        for name, value in answer.headers:
            if name in RELAYED_RESPONSE_HEADERS:
                headers.append((name, value))
        return Response(200, answer.body, headers, stream=answer.stream)

    def model_error(
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
