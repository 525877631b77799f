"""The server's one HTTP handler: control plane, runtime, metrics and health on one port."""

import asyncio
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from moorage.api.async_runtime import AsyncRuntimeApi
from moorage.api.console import Console
from moorage.api.control_plane import ControlPlane
from moorage.api.errors import control_error, runtime_error
from moorage.api.hosts import HostCheck
from moorage.api.runtime import RuntimeApi
from moorage.api.sigv4 import Refusal, SignatureCheck
from moorage.http import Request, Response
from moorage.metrics import EndpointMetrics

_ENDPOINTS: Final = "/endpoints/"
_CONSOLE: Final = "/console"


class ServerApp:
    """``signatures`` None: every request is accepted (loopback with no keys configured), if
    ``hosts`` allows its Host header.

        Health and metrics stay open either way, for load balancers and Prometheus. The console
        decides for itself (``console.refusal``): a browser cannot sign requests.
    """

    def __init__(
        self,
        control_plane: ControlPlane,
        runtime: RuntimeApi,
        async_runtime: AsyncRuntimeApi,
        metrics: EndpointMetrics,
        signatures: SignatureCheck | None = None,
        console: Console | None = None,
        hosts: HostCheck | None = None,
    ) -> None:
        self._control_plane = control_plane
        self._runtime = runtime
        self._metrics = metrics
        self._signatures = signatures
        self._console = console
        self._hosts = hosts
        self._invokers = {
            "invocations": runtime.invoke,
            "invocations-response-stream": runtime.invoke_stream,
            "async-invocations": async_runtime.invoke,
        }

    def handle(self, request: Request) -> "Response | asyncio.Future[Response]":
        path = request.path
        if path.startswith(_ENDPOINTS):
            name, _, operation = path[len(_ENDPOINTS) :].partition("/")
            invoke = self._invokers.get(operation) if request.method == "POST" else None
            if invoke is not None:
                if refusal := self._refusal(request):
                    return runtime_error(refusal.status, refusal.code, refusal.message)
                return invoke(request, _unquote(name))
            return runtime_error(
                404, "UnknownOperationException", f"moorage does not serve {request.method} {path}"
            )
        if path.startswith(_CONSOLE) and self._console is not None:
            if path == _CONSOLE or path[len(_CONSOLE)] == "/":
                if refusal := self._host_refusal(request):
                    return Response.text(refusal.status, refusal.message)
                return self._console.handle(request)
        if path == "/" and "x-amz-target" in request.headers:
            if refusal := self._refusal(request):
                return control_error(refusal.status, refusal.code, refusal.message)
            return asyncio.ensure_future(self._control_plane.handle(request))
        if path == "/metrics":
            return Response(
                200,
                generate_latest(self._metrics.registry),
                [("Content-Type", CONTENT_TYPE_LATEST)],
            )
        if path in ("/ping", "/healthz"):
            return Response.json(200, b'{"status": "Healthy"}')
        return control_error(
            404, "UnknownOperationException", f"No route for {request.method} {path}"
        )

    def _refusal(self, request: Request) -> Refusal | None:
        if self._signatures is None:
            return self._host_refusal(request)
        try:
            self._signatures.verify(request)
        except Refusal as refusal:
            return refusal
        return None

    def _host_refusal(self, request: Request) -> Refusal | None:
        hosts = self._hosts
        if hosts is None:
            return None
        host = request.headers.get("host")
        if hosts.allows(host):
            return None
        return Refusal(
            403,
            "AccessDeniedException",
            f"This moorage server checks no signatures, so it answers only requests addressed "
            f"to an IP address or localhost, not to {host!r} (a guard against DNS rebinding). "
            "Add the name to MOORAGE_ALLOWED_HOSTS to allow it.",
        )

    @staticmethod
    def http_error(status: int, message: str) -> Response:
        """The HTTP server's own refusals (oversize body, bad request) and its answer to a
        handler that failed, in SageMaker's shape."""
        code = _HTTP_ERROR_CODES.get(status, "ValidationError")
        return runtime_error(status, code, message)


_HTTP_ERROR_CODES: Final = {408: "RequestTimeout", 500: "InternalFailure"}


def _unquote(name: str) -> str:
    if "%" not in name:
        return name
    from urllib.parse import unquote

    return unquote(name)
