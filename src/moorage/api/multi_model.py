"""InvokeEndpoint on a multi-model variant: place the request, wait for a load if needed, invoke.

The hot case, a model already loaded on a free enough instance, costs a dict lookup and one
``POST /models/<key>/invoke``. Otherwise the request waits on the model's one load future on
that instance (see ``routing.loading``). A request that has waited ``load_wait_s`` (60 s, as
SageMaker) is answered ``ModelNotReadyException`` (429) while the load goes on, so a retry finds
the model loaded. Futures and callbacks only, no tasks.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Final

from moorage.api._answers import Answers
from moorage.api.errors import runtime_error
from moorage.http import Response
from moorage.http.client import ClientResponse
from moorage.routing import (
    InstanceRoute,
    LoadedModel,
    Loading,
    ModelLoader,
    MultiModelSource,
    VariantRoute,
    model_key,
    target_problem,
)

log = logging.getLogger(__name__)

_NOT_FOUND_TYPE: Final = b"ModelNotFoundException"
# Checked targets and their keys, so a hit skips the checks and the hash; cleared when full.
_KNOWN_TARGETS: Final = 65_536


class _Call:
    """One request for a model: what it carries and how far it got."""

    __slots__ = (
        "body",
        "endpoint",
        "gave_up",
        "headers",
        "is_retry",
        "key",
        "result",
        "source",
        "started",
        "target",
        "variant",
        "wait_started",
    )

    def __init__(
        self,
        result: "asyncio.Future[Response]",
        endpoint: str,
        variant: VariantRoute,
        source: MultiModelSource,
        target: str,
        key: str,
        headers: list[tuple[str, str]],
        body: Sequence[bytes | memoryview],
        started: float,
    ) -> None:
        self.result = result
        self.endpoint = endpoint
        self.variant = variant
        self.source = source
        self.target = target
        self.key = key
        self.headers = headers
        self.body = body
        self.started = started
        self.wait_started = 0.0
        self.is_retry = False
        self.gave_up = False


class MultiModelInvoker:
    def __init__(
        self, loader: ModelLoader, answers: Answers, *, timeout_s: float, load_wait_s: float
    ) -> None:
        self._loader = loader
        self._answers = answers
        self._timeout_s = timeout_s
        self._load_wait_s = load_wait_s
        self._keys: dict[str, str] = {}

    def check_target(self, target: str) -> str | None:
        """Why ``target`` cannot be a TargetModel, or None (and its key is remembered)."""
        if target in self._keys:
            return None
        problem = target_problem(target)
        if problem is None:
            if len(self._keys) >= _KNOWN_TARGETS:
                self._keys.clear()
            self._keys[target] = model_key(target)
        return problem

    def invoke(
        self,
        result: "asyncio.Future[Response]",
        endpoint: str,
        variant: VariantRoute,
        source: MultiModelSource,
        target: str,
        headers: list[tuple[str, str]],
        body: Sequence[bytes | memoryview],
        started: float,
    ) -> None:
        key = self._keys.get(target) or model_key(target)
        call = _Call(result, endpoint, variant, source, target, key, headers, body, started)
        self._place(call)

    def _place(self, call: _Call) -> None:
        variant = call.variant
        placement = variant.place(call.key)
        if placement is None:
            variant.metrics.errors_5xx.inc()
            call.result.set_result(
                runtime_error(
                    503,
                    "ServiceUnavailable",
                    f"Endpoint {call.endpoint} has no healthy instance to serve this request; "
                    "retry shortly.",
                )
            )
            return
        if placement.spread_to is not None:
            log.info("model %s is busy; loading it on another instance too", call.target)
            self._loader.load(
                placement.spread_to, call.source, call.key, call.target, variant.metrics
            )
        instance, models = placement.instance, placement.models
        if placement.is_loaded:
            model = models.hit(call.key)
            assert model is not None
            if not call.is_retry:
                variant.metrics.model_cache_hit.observe(1)
            self._send(call, instance, model)
            return
        if not call.is_retry:
            variant.metrics.model_cache_hit.observe(0)
        loading = placement.loading or self._loader.load(
            instance, call.source, call.key, call.target, variant.metrics
        )
        loading.waiters += 1
        call.wait_started = time.perf_counter()
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._load_wait_s, self._not_ready, call, loading)
        loading.future.add_done_callback(partial(self._on_loaded, call, instance, timer))

    def _not_ready(self, call: _Call, loading: Loading) -> None:
        if loading.future.done() or call.result.done():
            return
        call.gave_up = True
        loading.waiters -= 1
        self._record_wait(call)
        call.variant.metrics.errors_4xx.inc()
        call.result.set_result(
            runtime_error(
                429,
                "ModelNotReadyException",
                f"Model {call.target} is still being loaded on endpoint {call.endpoint} after "
                f"{self._load_wait_s:g} s; retry shortly.",
            )
        )

    def _on_loaded(
        self,
        call: _Call,
        instance: InstanceRoute,
        timer: asyncio.TimerHandle,
        loaded: "asyncio.Future[LoadedModel]",
    ) -> None:
        timer.cancel()
        if call.gave_up:
            return
        self._record_wait(call)
        exc = loaded.exception()
        if exc is not None:
            if not call.result.done():
                self._answers.failure(call.result, call.endpoint, call.variant, instance, exc)
            return
        model = loaded.result()  # already counts this request in flight
        if call.result.done():
            self._release(call, instance, model)
            return
        self._send(call, instance, model)

    def _record_wait(self, call: _Call) -> None:
        waited = time.perf_counter() - call.wait_started
        call.variant.metrics.model_loading_wait_time.observe(waited * 1e6)

    def _send(self, call: _Call, instance: InstanceRoute, model: LoadedModel) -> None:
        instance.outstanding += 1
        sent = time.perf_counter()
        upstream = instance.invoke(call.key, call.headers, call.body, self._timeout_s)
        upstream.add_done_callback(partial(self._on_answer, call, instance, model, sent))

    def _on_answer(
        self,
        call: _Call,
        instance: InstanceRoute,
        model: LoadedModel,
        sent: float,
        upstream: "asyncio.Future[ClientResponse]",
    ) -> None:
        instance.outstanding -= 1
        self._release(call, instance, model)
        if call.result.done():
            return
        if not call.is_retry and _is_not_loaded(upstream):
            # The instance no longer has the model (unloaded behind our back, or restarted):
            # forget it there and place the request again, once.
            models = instance.models
            if models is not None and models.loaded.get(model.key) is model:
                del models.loaded[model.key]
                instance.forget(model.key)
                models.notify()
            call.is_retry = True
            self._place(call)
            return
        self._answers.settle(
            call.result, call.endpoint, call.variant, instance, upstream, call.started, sent,
            call.headers, call.body,
        )  # fmt: skip

    def _release(self, call: _Call, instance: InstanceRoute, model: LoadedModel) -> None:
        models = instance.models
        if models is None:
            return
        models.release(model)
        if (
            not call.source.is_cache_enabled
            and model.in_flight == 0
            and models.loaded.get(model.key) is model
        ):
            # ModelCacheSetting=Disabled: unload once the answer is on its way.
            asyncio.get_running_loop().call_soon(self._unload_if_idle, instance, model, call)

    def _unload_if_idle(self, instance: InstanceRoute, model: LoadedModel, call: _Call) -> None:
        models = instance.models
        if models is not None and model.in_flight == 0 and models.loaded.get(model.key) is model:
            self._loader.unload(instance, model, call.variant.metrics)


def _is_not_loaded(upstream: "asyncio.Future[ClientResponse]") -> bool:
    if upstream.exception() is not None:
        return False
    answer = upstream.result()
    return answer.status == 404 and _NOT_FOUND_TYPE in bytes(answer.body)
