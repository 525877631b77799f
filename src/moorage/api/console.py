"""The web console: ``GET /console``, and a page per endpoint and per transform job (DESIGN.md §7).

Read-only, server-rendered HTML (``_console_pages``): what the control plane's List and Describe
calls answer, the in-memory numbers behind /metrics, and the tail of each instance's log. Store
and file reads run in threads; the metrics are read on the event loop, the only writer. Nothing
here runs on the invocation path: ``ServerApp`` routes ``/console`` after the runtime's paths.

A browser cannot sign requests, so a server that checks signatures refuses the console unless
MOORAGE_CONSOLE=on (``refusal``).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from moorage.api import _console_pages as pages
from moorage.api.control_plane import ControlPlane, endpoint_description
from moorage.config import ConsoleSetting
from moorage.control import documents
from moorage.control.service import ControlService
from moorage.errors import NotFound
from moorage.fleet import log_streams, tail
from moorage.http import Request, Response
from moorage.metrics import EndpointMetrics

log = logging.getLogger(__name__)

PREFIX: Final = "/console"
# Rows per table on the overview (the newest first), the most a List call answers at once.
_LIST_LIMIT: Final = 100
_LOG_LINES: Final = 200


def refusal(setting: ConsoleSetting, checks_signatures: bool) -> str | None:
    """Why the console is refused on this server; None when it is open."""
    if setting is ConsoleSetting.OFF:
        return "The console is off on this server (MOORAGE_CONSOLE=off)."
    if setting is ConsoleSetting.AUTO and checks_signatures:
        return (
            "This server answers only requests signed with one of its keys (--credentials-file), "
            "and a browser cannot sign requests, so the console is off. Start the server with "
            "MOORAGE_CONSOLE=on to open it to anyone who can reach this port: it shows "
            "endpoints, jobs, metrics and instance logs without asking for a key."
        )
    return None


def endpoint_kind(document: Mapping[str, Any]) -> str:
    """real-time, serverless, async, multi-model or pipeline, from the deployed snapshot."""
    resolved = document.get("Resolved") or {}
    config = documents.deployed_config(resolved)
    if config.get("AsyncInferenceConfig"):
        return "async"
    if any("ServerlessConfig" in v for v in config.get("ProductionVariants", ())):
        return "serverless"
    models = [entry.get("Document", {}) for entry in resolved.get("Models", {}).values()]
    if any(m.get("PrimaryContainer", {}).get("Mode") == "MultiModel" for m in models):
        return "multi-model"
    if any(m.get("Containers") for m in models):
        return "pipeline"
    return "real-time"


class Console:
    def __init__(
        self,
        control_plane: ControlPlane,
        service: ControlService,
        metrics: EndpointMetrics,
        logs_dir: Path,
        *,
        refused: str | None = None,
    ) -> None:
        self._control_plane = control_plane
        self._service = service
        self._metrics = metrics
        self._logs_dir = logs_dir
        self._refused = refused

    def handle(self, request: Request) -> "Response | asyncio.Future[Response]":
        if self._refused is not None:
            return pages.message(403, "Console off", self._refused)
        if request.method != "GET":
            answer = pages.message(405, "Read-only", "The console answers GET requests only.")
            answer.headers.append(("Allow", "GET"))
            return answer
        rest = request.path[len(PREFIX) :].strip("/")
        if not rest:
            return self._page(self._overview)
        section, _, name = rest.partition("/")
        name = unquote(name)
        if section == "endpoints" and name:
            return asyncio.ensure_future(self._endpoint(name))
        if section == "transform-jobs" and name:
            return self._page(lambda: self._transform_job(name))
        return pages.message(404, "Not found", f"The console has no page {request.path}.")

    def _page(self, render: Callable[[], Response]) -> "asyncio.Future[Response]":
        return asyncio.ensure_future(_guarded(asyncio.to_thread(render)))

    # Each of these runs in a thread.

    def _overview(self) -> Response:
        cp = self._control_plane
        endpoints, more_endpoints = _first(cp.list_endpoints, "Endpoints")
        described = []
        for summary in endpoints:
            try:
                view = self._service.describe_endpoint(summary["EndpointName"])
            except NotFound:  # deleted since the listing
                continue
            described.append((endpoint_description(view), endpoint_kind(view.record.document)))
        jobs, more_jobs = _first(cp.list_transform_jobs, "TransformJobSummaries")
        models, more_models = _first(cp.list_models, "Models")
        configs, more_configs = _first(cp.list_endpoint_configs, "EndpointConfigs")
        return pages.overview(
            pages.Listed(described, more_endpoints),
            pages.Listed(jobs, more_jobs),
            pages.Listed(_described(cp.describe_model, "ModelName", models), more_models),
            pages.Listed(
                _described(cp.describe_endpoint_config, "EndpointConfigName", configs),
                more_configs,
            ),
            limit=_LIST_LIMIT,
        )

    def _logs(self, name: str) -> list[tuple[str, list[str]]]:
        return [
            (f"{path.parent.name}/{path.stem}", tail(path, _LOG_LINES))
            for path in log_streams(self._logs_dir, name)
        ]

    def _transform_job(self, name: str) -> Response:
        try:
            job = self._control_plane.describe_transform_job({"TransformJobName": name})
        except NotFound:
            return pages.message(404, "Not found", f"There is no transform job named {name!r}.")
        return pages.transform_job(job, self._logs(job["TransformJobName"]), _LOG_LINES)

    async def _endpoint(self, name: str) -> Response:
        try:
            described = await asyncio.to_thread(self._describe, name)
        except NotFound:
            return pages.message(404, "Not found", f"There is no endpoint named {name!r}.")
        except Exception:
            log.exception("the console's page of endpoint %s failed", name)
            return pages.message(500, "Error", "The page failed; the server's log says why.")
        description, kind = described
        endpoint = description["EndpointName"]
        # On the event loop, which alone updates the numbers.
        usage = self._metrics.utilization(endpoint)
        numbers = [
            pages.VariantNumbers.read(variant, metrics, usage.get(variant))
            for variant, metrics in sorted(self._metrics.of_endpoint(endpoint).items())
        ]
        backlog = self._metrics.backlog(endpoint)
        return await _guarded(
            asyncio.to_thread(
                lambda: pages.endpoint(
                    description, kind, numbers, backlog, self._logs(endpoint), _LOG_LINES
                )
            )
        )

    def _describe(self, name: str) -> tuple[dict[str, Any], str]:
        view = self._service.describe_endpoint(name)
        return endpoint_description(view), endpoint_kind(view.record.document)


async def _guarded(page: Awaitable[Response]) -> Response:
    try:
        return await page
    except Exception:
        log.exception("a console page failed")
        return pages.message(500, "Error", "The page failed; the server's log says why.")


def _first(
    list_call: Callable[[dict[str, Any]], dict[str, Any]], key: str
) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``_LIST_LIMIT`` items of a List call, and whether there are more."""
    answer = list_call({"MaxResults": _LIST_LIMIT})
    return list(answer[key]), "NextToken" in answer


def _described(
    describe: Callable[[dict[str, Any]], dict[str, Any]], key: str, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    found = []
    for item in items:
        try:
            found.append(describe({key: item[key]}))
        except NotFound:  # deleted since the listing
            continue
    return found
