"""Loading and unloading models on multi-model instances (spec/CONTAINER.md §5), as futures.

A load is a chain of callbacks, never a task: check that the target exists (in an executor:
a stat, or an S3 HEAD), wait for an unload of the same model to finish, then ``POST /models``.
The instance answers:

- 200: loaded; 409: already loaded (the same thing to us);
- 507: no room. The least recently used idle model on that instance is unloaded
  (``DELETE /models/<key>``; never one with requests in flight) and the load is retried, until
  it fits. With nothing idle to unload but models in use or other loads under way, the load
  waits for the next of those to settle and tries again. With nothing at all left to free, the
  model cannot fit: ``ModelError`` with the instance's 507;
- another 4xx: the model data is unusable (a bad or unsafe archive): ``ValidationError``;
- a 5xx: the model's own code failed (requirements, import, ``model_fn``): ``ModelError``
  carrying the instance's status and message.

A failed load is not remembered: the next request for the model tries again.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from moorage.artifacts import Lease
from moorage.errors import InstanceUnavailable, ModelError, MoorageError, ValidationError
from moorage.http.client import ClientResponse
from moorage.metrics import VariantMetrics
from moorage.routing.models import InstanceModels, LoadedModel, Loading, MultiModelSource
from moorage.routing.table import InstanceRoute
from moorage.routing.targets import TargetChecker

log = logging.getLogger(__name__)

_JSON: Final = [("Content-Type", "application/json")]
_UNLOAD_TIMEOUT_S: Final = 60.0


class ModelLoader:
    """Starts loads and unloads; one per server."""

    def __init__(
        self,
        checker: TargetChecker,
        *,
        load_timeout_s: float,
        fetch: Callable[[str], Lease] | None = None,
    ) -> None:
        self._checker = checker
        self._load_timeout_s = load_timeout_s
        # For sources fetched here (a user's serve command): url → local folder, leased.
        self._fetch = fetch

    def load(
        self,
        instance: InstanceRoute,
        source: MultiModelSource,
        key: str,
        target: str,
        metrics: VariantMetrics,
    ) -> Loading:
        """Start loading ``target`` on ``instance``; the Loading is registered there at once."""
        models = instance.models
        assert models is not None
        loop = asyncio.get_running_loop()
        loading = Loading(key, target, loop.create_future())
        models.loading[key] = loading
        loading.future.add_done_callback(_retrieve)
        attempt = _Attempt(self, instance, models, source, loading, metrics, loop)
        checked = loop.run_in_executor(None, self._prepare, source, target)
        checked.add_done_callback(attempt.on_checked)
        return loading

    def _prepare(self, source: MultiModelSource, target: str) -> tuple[str, Lease | None]:
        """Blocking: check the target exists; return what the instance is asked to load."""
        self._checker.check(source.prefix, target)
        url = source.prefix.resolve(target)
        if source.is_fetched_here and self._fetch is not None:
            lease = self._fetch(url)
            return str(lease.path), lease
        return url, None

    def unload(
        self, instance: InstanceRoute, model: LoadedModel, metrics: VariantMetrics
    ) -> "asyncio.Future[None]":
        """Take ``model`` out of the instance's table now and unload it there."""
        models = instance.models
        assert models is not None
        if models.loaded.get(model.key) is model:
            del models.loaded[model.key]
        instance.forget(model.key)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        models.unloading[model.key] = done
        started = time.perf_counter()
        answer = instance.pool.request(
            "DELETE", f"/models/{model.key}", [], b"", timeout=_UNLOAD_TIMEOUT_S
        )

        def on_answer(upstream: "asyncio.Future[ClientResponse]") -> None:
            if models.unloading.get(model.key) is done:
                del models.unloading[model.key]
            exc = upstream.exception()
            status = None if exc is not None else upstream.result().status
            if status in (200, 404):
                # Only once the container has let go of it: it may still be reading it.
                lease = models.leases.pop(model.key, None)
                if lease is not None:
                    lease.release()
            if status == 200:
                metrics.model_unloading_time.observe((time.perf_counter() - started) * 1e6)
            elif exc is not None:
                log.warning("unloading %s from %s failed: %s", model.target, instance.pool, exc)
            models.notify()
            done.set_result(None)

        answer.add_done_callback(on_answer)
        return done

    @property
    def load_timeout_s(self) -> float:
        return self._load_timeout_s


class _Attempt:
    """The callbacks of one load, from the existence check to a loaded model or an error."""

    __slots__ = (
        "deadline",
        "instance",
        "lease",
        "loader",
        "loading",
        "loop",
        "metrics",
        "models",
        "payload",
        "sent",
        "source",
    )

    def __init__(
        self,
        loader: ModelLoader,
        instance: InstanceRoute,
        models: InstanceModels,
        source: MultiModelSource,
        loading: Loading,
        metrics: VariantMetrics,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.loader = loader
        self.instance = instance
        self.models = models
        self.source = source
        self.loading = loading
        self.metrics = metrics
        self.loop = loop
        self.deadline = loop.time() + loader.load_timeout_s
        self.payload = b""
        self.sent = 0.0
        self.lease: Lease | None = None

    def on_checked(self, checked: "asyncio.Future[tuple[str, Lease | None]]") -> None:
        exc = checked.exception()
        if exc is not None:
            self.fail(exc)
            return
        loading = self.loading
        url, self.lease = checked.result()
        self.payload = json.dumps({"model_name": loading.key, "url": url}).encode()
        unloading = self.models.unloading.get(loading.key)
        if unloading is not None:
            # Loading while the same model's unload is under way would be answered 409 and then
            # lose the model to the unload.
            unloading.add_done_callback(self.send)
            return
        self.send(None)

    def send(self, _: object) -> None:
        self.loading.is_parked = False
        remaining = self.deadline - self.loop.time()
        if remaining <= 0:
            self.fail(
                InstanceUnavailable(
                    f"Model {self.loading.target!r} could not be loaded within "
                    f"{self.loader.load_timeout_s:g} s."
                )
            )
            return
        self.sent = time.perf_counter()
        answer = self.instance.pool.request(
            "POST", "/models", _JSON, self.payload, timeout=remaining
        )
        answer.add_done_callback(self.on_answer)

    def on_answer(self, upstream: "asyncio.Future[ClientResponse]") -> None:
        exc = upstream.exception()
        if exc is not None:
            self.fail(exc)
            return
        answer = upstream.result()
        status = answer.status
        if status == 200:
            self.record(answer)
            self.keep_lease(replace=True)
            self.succeed()
        elif status == 409:
            # The container still has the copy an earlier load gave it, from that one's folder.
            self.keep_lease(replace=False)
            self.succeed()
        elif status == 507:
            self.make_room(answer)
        elif 400 <= status < 500:
            self.fail(
                ValidationError(
                    f"Model {self.loading.target!r} cannot be loaded: {_message(answer)}"
                )
            )
        else:
            message = _message(answer)
            self.fail(
                ModelError(
                    f"Model {self.loading.target!r} failed to load: {message}",
                    status=status,
                    body=message.encode(),
                )
            )

    def record(self, answer: ClientResponse) -> None:
        took = time.perf_counter() - self.sent
        timings = _json(bytes(answer.body))
        download = timings.get("downloadSeconds")
        load = timings.get("loadSeconds")
        metrics = self.metrics
        if isinstance(download, int | float):
            metrics.model_downloading_time.observe(download * 1e6)
        # The instance's own figure is the model's load alone; without one, the Load call.
        metrics.model_loading_time.observe((load if isinstance(load, int | float) else took) * 1e6)

    def make_room(self, answer: ClientResponse) -> None:
        models = self.models
        key = self.loading.key
        victim = models.idle_victim(keep=key)
        if victim is not None:
            log.info(
                "unloading %s from %s to make room for %s",
                victim.target,
                self.instance.instance_id,
                self.loading.target,
            )
            self.loader.unload(self.instance, victim, self.metrics).add_done_callback(self.send)
            return
        if models.will_free_memory(keep=key):
            self.loading.is_parked = True
            models.park().add_done_callback(self.send)
            return
        message = _message(answer)
        self.fail(
            ModelError(
                f"Model {self.loading.target!r} does not fit in the memory of an instance of "
                f"this variant, even with every other model unloaded: {message}",
                status=507,
                body=message.encode(),
            )
        )

    def keep_lease(self, *, replace: bool) -> None:
        lease, self.lease = self.lease, None
        if lease is None:
            return
        leases, key = self.models.leases, self.loading.key
        if key in leases and not replace:
            lease.release()
            return
        old = leases.get(key)
        leases[key] = lease
        if old is not None:
            old.release()

    def succeed(self) -> None:
        loading = self.loading
        models = self.models
        if models.loading.get(loading.key) is loading:
            del models.loading[loading.key]
        # The requests that waited are in flight from now on, so no eviction can take the
        # model before they reach it.
        model = LoadedModel(loading.key, loading.target, in_flight=loading.waiters)
        models.loaded[loading.key] = model
        models.notify()
        loading.future.set_result(model)

    def fail(self, exc: BaseException) -> None:
        if self.lease is not None:
            self.lease.release()
        loading = self.loading
        models = self.models
        if models.loading.get(loading.key) is loading:
            del models.loading[loading.key]
        models.notify()
        if not isinstance(exc, MoorageError):
            exc = InstanceUnavailable(f"Loading model {loading.target!r} failed: {exc}")
        loading.future.set_exception(exc)


def _retrieve(future: "asyncio.Future[LoadedModel]") -> None:
    # A load nobody waits for any more (a background spread, or callers answered 429) must not
    # leave an unretrieved exception behind.
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.info("load failed: %s", exc)


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _message(answer: ClientResponse) -> str:
    """The instance's error message: MMS's ``{"message": ...}`` shape, else the body."""
    body = bytes(answer.body)
    message = _json(body).get("message")
    if isinstance(message, str):
        return message
    return body.decode("utf-8", "replace").strip() or f"HTTP {answer.status}"
