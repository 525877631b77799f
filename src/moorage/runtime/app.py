"""The instance's routes: the SageMaker container contract over the worker pools.

Single-model: ``GET /ping``, ``POST /invocations``. Multi-model (``SAGEMAKER_MULTI_MODEL=true``):
``GET /ping`` and the ``/models`` API of spec/CONTAINER.md §5. ``/ping`` is answered here in the
front, so it stays responsive while every worker is busy; it reports load progress and failure.

What moorage adds to the §5 API, for the platform's metrics and eviction:

- ``POST /models`` answers 200 with ``downloadSeconds`` (fetch, unpack, requirements) and
  ``loadSeconds`` (from starting the workers to the first one ready: ``model_fn``).
- ``GET /models/{name}`` adds ``memoryBytes`` (private memory of its workers, see
  ``memory.py``),
  ``lastUsed`` (epoch seconds of the last invoke, else of the load), the workers' pids and
  ``readyWorkers``; each entry of ``GET /models`` adds ``memoryBytes`` and ``lastUsed``.
- ``GET /memory`` answers ``{"budgetBytes", "usedBytes", "loadedModels", "availableBytes"}``:
  the budget (``MOORAGE_MEMORY_BUDGET_MB``; null: none), the private memory of all loaded
  models' workers (not the front's nor the zygote's, whose preloaded libraries they share),
  how many models are loaded, and the kernel's MemAvailable (null off Linux).

A load answers 507 without loading when ``MOORAGE_MAX_LOADED_MODELS`` models are loaded or
loading, when less than ``MOORAGE_MIN_FREE_MEMORY_MB`` would stay available, or when the budget
would be passed: used + reserved + estimate > budget. The estimate of a new model is the mean
memory of the loaded models, or, when none is loaded, the size of its unpacked files (a
deserialized model is rarely smaller than its files); each load in progress reserves its
estimate until its workers are ready, so concurrent loads cannot overshoot together.
"""

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from moorage.artifacts import Lease, ModelCache
from moorage.contract.arena import SLOTS, Arena, keep_trimmed
from moorage.errors import LoadError, MoorageError
from moorage.http import Request, Response
from moorage.runtime.config import RuntimeConfig
from moorage.runtime.launcher import Launcher, make_launcher
from moorage.runtime.loading import prepare
from moorage.runtime.memory import memory_available, processes_memory, tree_size
from moorage.runtime.pool import MemoryExhausted, WorkerPool, make_status_root
from moorage.runtime.worker import WorkerSpec

log = logging.getLogger(__name__)

_LIST_LIMIT = 100
_MODELS_PREFIX = "/models/"
_INVOKE = "/invoke"


def _json(status: int, payload: object) -> Response:
    return Response.json(status, json.dumps(payload).encode())


def _error(status: int, kind: str, message: str) -> Response:
    # The shape MMS answers on its management API, which MME clients already parse.
    return _json(status, {"code": status, "type": kind, "message": message})


@dataclass(slots=True)
class _Model:
    name: str
    url: str
    # Set once its first worker is ready; until then the model is loading, not loaded.
    pool: WorkerPool | None = None
    # Bytes held back from the budget while it loads.
    reserved: int = 0
    last_used: float = 0.0
    # Keeps its folder out of the cache's eviction until its workers are gone.
    lease: Lease | None = None


async def _measure(pools: Sequence[WorkerPool]) -> list[int]:
    """Memory of each pool's workers, read off the loop (about 2 ms a process)."""
    groups = [pool.pids for pool in pools]
    return await asyncio.to_thread(lambda: [processes_memory(pids) for pids in groups])


class Instance:
    """Routes requests to worker pools; owns their lifecycle."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self._single: WorkerPool | None = None
        self._single_lease: Lease | None = None
        self._single_failure: str | None = None
        self._models: dict[str, _Model] = {}
        # Pools still starting: stopped with the instance, though not yet in a _Model.
        self._starting: set[WorkerPool] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.launcher: Launcher = make_launcher(
            use_zygote=config.use_zygote, preload=config.preload
        )
        self._status_root = make_status_root()
        self._model_cache = ModelCache(config.cache_dir / "models", config.model_cache)
        # Large bodies travel between this front and its workers in shared memory (a slot's
        # memory is only taken once a body needs it).
        self.arena = Arena(
            self._status_root / "bodies",
            config.max_payload,
            count=max(SLOTS, 2 * config.workers),
        )

    # lifecycle

    def start(self) -> None:
        """Begin loading the single model in the background; ``/ping`` tells when it is ready."""
        self._spawn(keep_trimmed(self.arena))
        if not self.config.multi_model:
            self._spawn(self._load_single())

    async def _load_single(self) -> None:
        url = self.config.model_url
        assert url is not None
        try:
            spec, self._single_lease = await asyncio.to_thread(
                prepare, url, self.config, self._model_cache
            )
            pool = self._pool(spec)
            self._single = pool
            await pool.start()
        except MoorageError as exc:
            self._single_failure = str(exc)
            log.error("the model cannot be served: %s", exc)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        pools = [m.pool for m in self._models.values() if m.pool is not None]
        pools.extend(self._starting)
        if self._single is not None:
            pools.append(self._single)
        await asyncio.gather(*(pool.stop() for pool in pools), return_exceptions=True)
        for lease in [m.lease for m in self._models.values()] + [self._single_lease]:
            if lease is not None:
                lease.release()
        await self.launcher.close()
        shutil.rmtree(self._status_root, ignore_errors=True)

    def _pool(self, spec: WorkerSpec) -> WorkerPool:
        return WorkerPool(
            spec,
            self.config.workers,
            timeout_s=self.config.timeout_s,
            queue_size=self.config.queue_size,
            status_root=self._status_root,
            launcher=self.launcher,
            socket_prefix=self.config.worker_sockets,
            arena=self.arena,
        )

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any]":
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # routing

    def handle(self, request: Request) -> "Response | asyncio.Future[Response]":
        path, method = request.path, request.method
        # The two invocation routes first: every other route is rare.
        if method == "POST" and path.startswith(_MODELS_PREFIX) and path.endswith(_INVOKE):
            name = path[len(_MODELS_PREFIX) : -len(_INVOKE)]
            if self.config.multi_model and name and "/" not in name:
                return self._invoke_model(unquote(name) if "%" in name else name, request)
        if path == "/invocations":
            if method != "POST":
                return Response.text(405, "Use POST for /invocations")
            return self._invoke_single(request)
        if path == "/ping":
            return self._ping()
        if path == "/memory" and method == "GET":
            return self._spawn(self._memory())
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
                return self._spawn(self._list_models(request.query))
            if method == "POST":
                return self._spawn(self._load_model(request.body))
        elif len(parts) == 1:
            if method == "GET":
                return self._spawn(self._describe_model(parts[0]))
            if method == "DELETE":
                return self._spawn(self._unload_model(parts[0]))
        elif len(parts) == 2 and parts[1] == "invoke" and method == "POST":
            return self._invoke_model(parts[0], request)
        return _error(405, "MethodNotAllowed", f"{method} {request.path} is not supported")

    # multi-model API

    async def _list_models(self, query: str) -> Response:
        params = parse_qs(query)
        try:
            limit = int(params.get("limit", [str(_LIST_LIMIT)])[0])
            start = int(params.get("next_page_token", ["0"])[0])
        except ValueError:
            return _error(400, "BadRequest", "limit and next_page_token must be integers")
        limit = max(1, min(limit, _LIST_LIMIT))
        names = sorted(n for n, m in self._models.items() if m.pool is not None)
        page = [self._models[n] for n in names[start : start + limit]]
        memory = await _measure([m.pool for m in page if m.pool is not None])
        payload: dict[str, object] = {
            "models": [
                {
                    "modelName": m.name,
                    "modelUrl": m.url,
                    "memoryBytes": used,
                    "lastUsed": m.last_used,
                }
                for m, used in zip(page, memory, strict=True)
            ]
        }
        if start + limit < len(names):
            payload["nextPageToken"] = str(start + limit)
        return _json(200, payload)

    async def _describe_model(self, name: str) -> Response:
        model = self._models.get(name)
        if model is None or model.pool is None:
            return _error(404, "ModelNotFoundException", f"Model not found: {name}")
        pool = model.pool
        (memory,) = await _measure([pool])
        return _json(
            200,
            {
                "modelName": name,
                "modelUrl": model.url,
                "workers": [{"pid": pid} for pid in pool.pids],
                "readyWorkers": pool.ready_workers,
                "memoryBytes": memory,
                "lastUsed": model.last_used,
            },
        )

    async def _memory(self) -> Response:
        loaded = await _measure([m.pool for m in self._models.values() if m.pool is not None])
        budget = self.config.memory_budget_bytes
        return _json(
            200,
            {
                "budgetBytes": budget or None,
                "usedBytes": sum(loaded),
                "loadedModels": len(loaded),
                "availableBytes": memory_available(),
            },
        )

    async def _load_model(self, body: bytes) -> Response:
        try:
            payload = json.loads(body)
            name, url = str(payload["model_name"]), str(payload["url"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "BadRequest", 'Body must be {"model_name": ..., "url": ...}')
        if name in self._models:
            # Also while it loads: the load in progress answers for it, unaffected.
            return _error(409, "Conflict", f"Model {name} is already loaded")
        refusal = self._memory_refusal()
        if refusal is not None:
            return _error(507, "InsufficientStorage", refusal)
        model = self._models[name] = _Model(name, url)
        pool: WorkerPool | None = None
        try:
            started = time.perf_counter()
            spec, model.lease, size = await asyncio.to_thread(self._prepare, url, name)
            prepared = time.perf_counter()
            refusal = await self._budget_refusal(name, size)
            if refusal is not None:
                self._forget(model)
                return _error(507, "InsufficientStorage", refusal)
            pool = self._pool(spec)
            self._starting.add(pool)
            await pool.start()
            loaded = time.perf_counter()
        except MemoryExhausted as exc:
            self._forget(model)
            return _error(507, "InsufficientStorage", f"Not enough memory to load {name}: {exc}")
        except LoadError as exc:
            self._forget(model)
            return _error(500, "ModelLoadError", f"Failed to load {name}: {exc}")
        except MoorageError as exc:
            self._forget(model)
            return _error(400, "BadRequest", f"Failed to load {name}: {exc}")
        except BaseException:
            self._models.pop(name, None)
            if pool is not None:
                self._spawn(self._stop_model(pool, model))
            elif model.lease is not None:
                model.lease.release()
            raise
        finally:
            model.reserved = 0
            if pool is not None:
                self._starting.discard(pool)
        model.pool = pool
        model.last_used = time.time()
        log.info("loaded model %s from %s", name, url)
        return _json(
            200,
            {
                "status": f"Model {name} loaded",
                "downloadSeconds": round(prepared - started, 6),
                "loadSeconds": round(loaded - prepared, 6),
            },
        )

    def _prepare(self, url: str, name: str) -> tuple[WorkerSpec, Lease, int]:
        spec, lease = prepare(url, self.config, self._model_cache, model_name=name)
        # Only needed to estimate the first model's cost, and then only under a budget.
        size = tree_size(Path(spec.model_dir)) if self.config.memory_budget_bytes else 0
        return spec, lease, size

    def _forget(self, model: _Model) -> None:
        """Drop a model whose load failed; its workers, if any started, are gone."""
        del self._models[model.name]
        if model.lease is not None:
            model.lease.release()

    @staticmethod
    async def _stop_model(pool: WorkerPool, model: _Model) -> None:
        await pool.stop()
        # Only now: a worker still running may yet read the model's files.
        if model.lease is not None:
            model.lease.release()

    def _memory_refusal(self) -> str | None:
        if self.config.max_models and len(self._models) >= self.config.max_models:
            return f"{len(self._models)} models are loaded, the limit of this instance"
        available = memory_available()
        if available is not None and available < self.config.min_free_bytes:
            return f"only {available // 2**20} MiB of memory is available"
        return None

    async def _budget_refusal(self, name: str, size: int) -> str | None:
        """Reserve the new model's estimated memory, or say why it does not fit the budget."""
        budget = self.config.memory_budget_bytes
        if not budget:
            return None
        loaded = await _measure([m.pool for m in self._models.values() if m.pool is not None])
        # No await from here on: the check and the reservation are one step for the loop.
        reserved = sum(m.reserved for m in self._models.values())
        estimate = sum(loaded) // len(loaded) if loaded else size
        used = sum(loaded) + reserved
        if used + estimate > budget:
            return (
                f"Loading {name} would pass the memory budget: {used // 2**20} MiB of "
                f"{budget // 2**20} MiB are used, and it needs about {estimate // 2**20} MiB "
                "(MOORAGE_MEMORY_BUDGET_MB)"
            )
        self._models[name].reserved = estimate
        return None

    async def _unload_model(self, name: str) -> Response:
        model = self._models.get(name)
        if model is None or model.pool is None:
            return _error(404, "ModelNotFoundException", f"Model not found: {name}")
        del self._models[name]
        await self._stop_model(model.pool, model)
        log.info("unloaded model %s", name)
        return _json(200, {"status": f"Model {name} unloaded"})

    def _invoke_model(self, name: str, request: Request) -> "Response | asyncio.Future[Response]":
        model = self._models.get(name)
        if model is None or model.pool is None:
            return _error(404, "ModelNotFoundException", f"Model not found: {name}")
        model.last_used = time.time()
        return model.pool.submit(request.headers, request.parts, name)
