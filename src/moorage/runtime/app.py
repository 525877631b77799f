"""The instance's routes: the SageMaker container contract over the worker pools.

Single-model: ``GET /ping``, ``POST /invocations``. Multi-model (``SAGEMAKER_MULTI_MODEL=true``):
``GET /ping`` and the ``/models`` API of spec/CONTAINER.md §5. ``/ping`` is answered here in the
front, so it stays responsive while every worker is busy; it reports load progress and failure.
"""

import asyncio
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from moorage.errors import LoadError, MoorageError
from moorage.http import Request, Response
from moorage.runtime.config import RuntimeConfig
from moorage.runtime.loading import memory_available, prepare
from moorage.runtime.pool import MemoryExhausted, WorkerPool

log = logging.getLogger(__name__)

_LIST_LIMIT = 100


def _json(status: int, payload: object) -> Response:
    return Response.json(status, json.dumps(payload).encode())


def _error(status: int, kind: str, message: str) -> Response:
    # The shape MMS answers on its management API, which MME clients already parse.
    return _json(status, {"code": status, "type": kind, "message": message})


@dataclass(slots=True)
class _Model:
    name: str
    url: str
    pool: WorkerPool | None = None


class Instance:
    """Routes requests to worker pools; owns their lifecycle."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self._single: WorkerPool | None = None
        self._single_failure: str | None = None
        self._models: dict[str, _Model] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # lifecycle

    def start(self) -> None:
        """Begin loading the single model in the background; ``/ping`` tells when it is ready."""
        if not self.config.multi_model:
            self._spawn(self._load_single())

    async def _load_single(self) -> None:
        url = self.config.model_url
        assert url is not None
        try:
            spec = await asyncio.to_thread(prepare, url, self.config)
            pool = WorkerPool(
                spec,
                self.config.workers,
                timeout_s=self.config.timeout_s,
                queue_size=self.config.queue_size,
            )
            self._single = pool
            await pool.start()
        except MoorageError as exc:
            self._single_failure = str(exc)
            log.error("the model cannot be served: %s", exc)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        pools = [m.pool for m in self._models.values() if m.pool is not None]
        if self._single is not None:
            pools.append(self._single)
        await asyncio.gather(*(pool.stop() for pool in pools), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any]":
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # routing

    def handle(self, request: Request) -> "Response | asyncio.Future[Response]":
        path, method = request.path, request.method
        if path == "/invocations":
            if method != "POST":
                return Response.text(405, "Use POST for /invocations")
            return self._invoke_single(request)
        if path == "/ping":
            return self._ping()
        if path == "/models" or path.startswith("/models/"):
            if not self.config.multi_model:
                return _error(404, "NotFound", "This instance serves one model; use /invocations")
            return self._route_models(request)
        return _error(404, "NotFound", f"No route for {method} {path}")

    def _ping(self) -> Response:
        if self.config.multi_model:
            return _json(200, {"status": "Healthy"})
        if self._single_failure is not None:
            return _json(500, {"status": "Unhealthy", "reason": self._single_failure})
        pool = self._single
        if pool is None or pool.ready_workers == 0:
            if pool is not None and pool.failure is not None:
                return _json(500, {"status": "Unhealthy", "reason": str(pool.failure)})
            return _json(503, {"status": "Loading"})
        if pool.ready_workers < pool.size:
            return _json(200, {"status": "Partial Healthy"})
        return _json(200, {"status": "Healthy"})

    def _invoke_single(self, request: Request) -> "Response | asyncio.Future[Response]":
        pool = self._single
        if pool is not None and pool.has_loaded:
            return pool.submit(request.headers, request.parts)
        if self.config.multi_model:
            return _error(
                400, "BadRequest", "This instance serves multiple models; use /models/{name}/invoke"
            )
        if self._single_failure is not None:
            return Response.text(500, f"The model failed to load: {self._single_failure}")
        if pool is not None and pool.failure is not None:
            return Response.text(500, f"The model failed to load: {pool.failure}")
        return Response.text(503, "The model is still loading")

    def _route_models(self, request: Request) -> "Response | asyncio.Future[Response]":
        parts = [unquote(p) for p in request.path.split("/")[2:]]
        method = request.method
        if not parts or parts == [""]:
            if method == "GET":
                return self._list_models(request.query)
            if method == "POST":
                return self._spawn(self._load_model(request.body))
        elif len(parts) == 1:
            if method == "GET":
                return self._describe_model(parts[0])
            if method == "DELETE":
                return self._spawn(self._unload_model(parts[0]))
        elif len(parts) == 2 and parts[1] == "invoke" and method == "POST":
            return self._invoke_model(parts[0], request)
        return _error(405, "MethodNotAllowed", f"{method} {request.path} is not supported")

    # multi-model API

    def _list_models(self, query: str) -> Response:
        params = parse_qs(query)
        try:
            limit = int(params.get("limit", [str(_LIST_LIMIT)])[0])
            start = int(params.get("next_page_token", ["0"])[0])
        except ValueError:
            return _error(400, "BadRequest", "limit and next_page_token must be integers")
        limit = max(1, min(limit, _LIST_LIMIT))
        names = sorted(self._models)
        page = names[start : start + limit]
        payload: dict[str, object] = {
            "models": [{"modelName": n, "modelUrl": self._models[n].url} for n in page]
        }
        if start + limit < len(names):
            payload["nextPageToken"] = str(start + limit)
        return _json(200, payload)

    def _describe_model(self, name: str) -> Response:
        model = self._models.get(name)
        if model is None or model.pool is None:
            return _error(404, "ModelNotFoundException", f"Model not found: {name}")
        pool = model.pool
        return _json(
            200,
            {
                "modelName": name,
                "modelUrl": model.url,
                "workers": [{"pid": pid} for pid in pool.pids],
                "readyWorkers": pool.ready_workers,
            },
        )

    async def _load_model(self, body: bytes) -> Response:
        try:
            payload = json.loads(body)
            name, url = str(payload["model_name"]), str(payload["url"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "BadRequest", 'Body must be {"model_name": ..., "url": ...}')
        if name in self._models:
            return _error(409, "Conflict", f"Model {name} is already loaded")
        refusal = self._memory_refusal()
        if refusal is not None:
            return _error(507, "InsufficientStorage", refusal)
        model = self._models[name] = _Model(name, url)
        try:
            spec = await asyncio.to_thread(prepare, url, self.config, model_name=name)
            model.pool = WorkerPool(
                spec,
                self.config.workers,
                timeout_s=self.config.timeout_s,
                queue_size=self.config.queue_size,
            )
            await model.pool.start()
        except MemoryExhausted as exc:
            del self._models[name]
            return _error(507, "InsufficientStorage", f"Not enough memory to load {name}: {exc}")
        except LoadError as exc:
            del self._models[name]
            return _error(500, "ModelLoadError", f"Failed to load {name}: {exc}")
        except MoorageError as exc:
            del self._models[name]
            return _error(400, "BadRequest", f"Failed to load {name}: {exc}")
        except BaseException:
            self._models.pop(name, None)
            raise
        log.info("loaded model %s from %s", name, url)
        return _json(200, {"status": f"Model {name} loaded"})

    def _memory_refusal(self) -> str | None:
        if self.config.max_models and len(self._models) >= self.config.max_models:
            return f"{len(self._models)} models are loaded, the limit of this instance"
        available = memory_available()
        if available is not None and available < self.config.min_free_bytes:
            return f"only {available // 2**20} MiB of memory is available"
        return None

    async def _unload_model(self, name: str) -> Response:
        model = self._models.get(name)
        if model is None or model.pool is None:
            return _error(404, "ModelNotFoundException", f"Model not found: {name}")
        del self._models[name]
        await model.pool.stop()
        log.info("unloaded model %s", name)
        return _json(200, {"status": f"Model {name} unloaded"})

    def _invoke_model(self, name: str, request: Request) -> "Response | asyncio.Future[Response]":
        model = self._models.get(name)
        if model is None or model.pool is None:
            return _error(404, "ModelNotFoundException", f"Model not found: {name}")
        return model.pool.submit(request.headers, request.parts, name)
