"""Running fleets: the instances of an endpoint config's variants, started, health-checked,
routed and stopped together.

A fleet is built whole or not at all: every instance must pass ``/ping`` within its startup
window, else everything started is stopped and the failure says why, in SageMaker's words where
SageMaker has some (the last line of ``model_fn``'s traceback comes from the runtime's ping).

A serverless variant runs one instance at most: it is built with one (so a model that cannot
load fails the endpoint at once), stopped when idle down to the ProvisionedConcurrency kept
warm (``desired_count``: 1 with provisioned concurrency, else 0), and started again by the first
request that finds none (a cold start). Its requests in flight are bounded by MaxConcurrency.
"""

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from moorage.capture import CaptureWriter
from moorage.config import ServerConfig
from moorage.contract import Env
from moorage.contract.arena import Arena
from moorage.domain import (
    ContainerDefinition,
    DataCaptureConfig,
    Model,
    ModelCacheSetting,
    ProductionVariant,
    RoutingStrategy,
)
from moorage.errors import InstanceUnavailable, MoorageError
from moorage.fleet import (
    MEMORY_BUDGET_VAR,
    ImageKind,
    Instance,
    InstanceSpec,
    LocalProcessFleet,
    classify_image,
    memory_budget_mb,
)
from moorage.http.client import ConnectionPool
from moorage.metrics import EndpointMetrics
from moorage.routing import (
    FleetRoute,
    InstanceModels,
    InstanceRoute,
    ModelPrefix,
    MultiModelSource,
    ServerlessRoute,
    VariantRoute,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_PING_INTERVAL_S = 0.1
_PING_TIMEOUT_S = 2.0
_DRAIN_POLL_S = 0.05


class FleetFailed(MoorageError):
    """A fleet could not be brought up; the message is the endpoint's FailureReason."""


@dataclass(eq=False)
class RunningInstance:
    instance: Instance
    route: InstanceRoute
    watcher: "asyncio.Task[None] | None" = None
    is_stopping: bool = False
    # The processes of an inference pipeline's other containers, which live and die with it.
    others: list[Instance] = field(default_factory=list)

    @property
    def processes(self) -> list[Instance]:
        return [self.instance, *self.others]


@dataclass(eq=False)
class RunningVariant:
    variant: ProductionVariant
    model: Model
    desired_count: int
    route: VariantRoute
    instances: list[RunningInstance] = field(default_factory=list)
    # Serverless: the cold start under way, which every request finding no instance awaits.
    starting: "asyncio.Future[None] | None" = None


@dataclass(eq=False)
class RunningFleet:
    endpoint: str
    config_name: str
    variants: dict[str, RunningVariant]
    route: FleetRoute
    is_stopped: bool = False


def _pool_for(instance: Instance) -> ConnectionPool:
    if instance.unix_socket is not None:
        return ConnectionPool(unix_path=instance.unix_socket)
    assert instance.port is not None
    return ConnectionPool(host="127.0.0.1", port=instance.port)


class FleetBuilder:
    """Starts and stops fleets; calls ``on_instance_exit`` when an instance dies on its own."""

    def __init__(
        self,
        fleet: LocalProcessFleet,
        metrics: EndpointMetrics,
        config: ServerConfig,
        on_instance_exit: Callable[[str], None],
        arena: Arena | None = None,
        captures: CaptureWriter | None = None,
    ) -> None:
        self._fleet = fleet
        self._arena = arena
        self._captures = captures
        self._metrics = metrics
        self._config = config
        self._on_instance_exit = on_instance_exit
        # Cold starts under way (the loop keeps only weak references to tasks).
        self._tasks: set[asyncio.Task[Any]] = set()

    def log_stream_arn(self, endpoint: str, variant: str, instance_id: str) -> str:
        c = self._config
        return (
            f"arn:aws:logs:{c.region}:{c.account}:log-group:/aws/sagemaker/Endpoints/"
            f"{endpoint}:log-stream:{variant}/{instance_id}"
        )

    async def build(
        self,
        endpoint: str,
        config_name: str,
        variants: list[tuple[ProductionVariant, Model, float, int]],
        capture: DataCaptureConfig | None = None,
    ) -> RunningFleet:
        """Start (variant, model, weight, count) fleets, capturing their invocations as
        ``capture`` says; raise FleetFailed if any instance fails."""
        running: dict[str, RunningVariant] = {}
        for variant, model, weight, count in variants:
            route = VariantRoute(
                variant.variant_name,
                weight,
                self._metrics.for_variant(endpoint, variant.variant_name),
                multi_model=_multi_model_source(model),
                is_random=variant.routing_strategy is RoutingStrategy.RANDOM,
                prefix=variant.prefix_routing,
                capture=self._captures.tap(endpoint, variant.variant_name, capture)
                if self._captures is not None
                else None,
            )
            if route.multi_model is not None:
                self._metrics.count_loaded_models(
                    endpoint, variant.variant_name, partial(_loaded_models, route)
                )
            running[variant.variant_name] = RunningVariant(variant, model, count, route)
        fleet = RunningFleet(
            endpoint,
            config_name,
            running,
            FleetRoute(config_name, {name: v.route for name, v in running.items()}),
        )
        loop = asyncio.get_running_loop()
        for v in running.values():
            if v.variant.serverless_config is not None:
                v.route.serverless = ServerlessRoute(
                    v.variant.serverless_config.max_concurrency,
                    partial(self._cold_start, fleet, v),
                    last_used=loop.time(),
                )
        starts = [
            self.add_instance(fleet, v) for v in running.values() for _ in range(_initial_count(v))
        ]
        results = await asyncio.gather(*starts, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop(fleet)
            first = failures[0]
            if isinstance(first, FleetFailed):
                raise first
            raise FleetFailed(f"Starting instances failed: {first}") from first
        return fleet

    async def add_instance(self, fleet: RunningFleet, variant: RunningVariant) -> RunningInstance:
        """Start one instance, wait for it to pass /ping, then put it in the variant's route.

        An inference pipeline's instance is one process per container, as SageMaker runs one
        container each; the first one's route leads to the others.
        """
        instance_id = uuid.uuid4().hex[:12]
        model = variant.model
        started: list[tuple[Instance, InstanceRoute]] = []
        try:
            for n, (container, hostname) in enumerate(
                zip(model.pipeline, model.container_hostnames, strict=True)
            ):
                name = instance_id if n == 0 else f"{instance_id}-{hostname}"
                started.append(await self._start_container(fleet, variant, container, name))
        except BaseException:
            for instance, route in started:
                await route.close()
                await self._fleet.stop(instance, grace=2.0)
            raise
        (first, route), others = started[0], started[1:]
        if others:
            hostnames = model.container_hostnames
            route.containers = {h: r for h, (_, r) in zip(hostnames, started, strict=True)}
            route.is_serial = not model.is_direct_pipeline
        running = RunningInstance(first, route, others=[instance for instance, _ in others])
        variant.instances.append(running)
        variant.route.instances.append(running.route)
        running.watcher = asyncio.create_task(self._watch(fleet, variant, running))
        return running

    async def _start_container(
        self,
        fleet: RunningFleet,
        variant: RunningVariant,
        container: ContainerDefinition,
        instance_id: str,
    ) -> tuple[Instance, InstanceRoute]:
        environment = dict(container.environment)
        if container.is_multi_model:
            environment[MEMORY_BUDGET_VAR] = str(
                memory_budget_mb(
                    variant.variant.instance_type,
                    model_setting=container.environment.get(MEMORY_BUDGET_VAR),
                    server_setting=self._config.memory_budget_mb,
                )
            )
        spec = InstanceSpec(
            endpoint=fleet.endpoint,
            variant=variant.variant.variant_name,
            instance_id=instance_id,
            image=container.image,
            model_data_url=container.model_data_url,
            environment=environment,
            is_multi_model=container.is_multi_model,
        )
        instance = await self._fleet.start(spec)
        pool = _pool_for(instance)
        timeout = float(
            variant.variant.container_startup_health_check_timeout_in_seconds
            or self._config.startup_timeout_s
        )
        try:
            await self._wait_healthy(instance, pool, timeout)
        except BaseException:
            await pool.close()
            await self._fleet.stop(instance, grace=2.0)
            raise
        arn = self.log_stream_arn(fleet.endpoint, spec.variant, instance_id)
        models = InstanceModels() if container.is_multi_model else None
        capture = variant.route.capture
        route = InstanceRoute(
            instance_id,
            pool,
            arn,
            models=models,
            worker_sockets=instance.worker_sockets,
            # The worker writes its answer over a request it read from the arena, and a
            # captured request is read after its answer.
            arena=None if capture is not None and capture.captures_request else self._arena,
        )
        if models is None:
            await route.connect_workers()
        return instance, route

    def _cold_start(self, fleet: RunningFleet, variant: RunningVariant) -> "asyncio.Future[None]":
        """Start an instance for a serverless variant that has none; one start at a time."""
        if variant.starting is not None:
            return variant.starting
        loop = asyncio.get_running_loop()
        starting: asyncio.Future[None] = loop.create_future()
        # Requests that gave up waiting leave no one to read a failure: do not log it as lost.
        starting.add_done_callback(lambda f: f.cancelled() or f.exception())
        variant.starting = starting
        began = loop.time()

        def started(task: "asyncio.Task[RunningInstance]") -> None:
            variant.starting = None
            if task.cancelled():
                starting.set_exception(InstanceUnavailable("the cold start was cancelled"))
                return
            exc = task.exception()
            if exc is not None:
                log.error("cold start of %s/%s failed: %s", fleet.endpoint, variant.route.name, exc)
                starting.set_exception(exc)
                return
            variant.route.metrics.model_setup_time.observe((loop.time() - began) * 1e6)
            if fleet.is_stopped:
                # The fleet was replaced or deleted while this instance started.
                self._spawn(self.remove_instance(variant, task.result()))
            starting.set_result(None)

        self._spawn(self.add_instance(fleet, variant)).add_done_callback(started)
        return starting

    def _spawn(self, coroutine: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def idle_serverless(self, fleet: RunningFleet, idle_s: float) -> list[RunningVariant]:
        """Serverless variants with more instances than they keep warm and no request for
        ``idle_s`` seconds."""
        now = asyncio.get_running_loop().time()
        return [
            v
            for v in fleet.variants.values()
            if (serverless := v.route.serverless) is not None
            and len(v.instances) > v.desired_count
            and serverless.in_flight == 0
            and v.starting is None
            and now - serverless.last_used >= idle_s
        ]

    async def _wait_healthy(self, instance: Instance, pool: ConnectionPool, within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        variant = instance.spec.variant
        while True:
            if not instance.is_running:
                raise FleetFailed(
                    f"The primary container for production variant {variant} exited with code "
                    f"{instance.process.returncode} before passing the ping health check: "
                    f"{_last_line(instance)}"
                )
            try:
                answer = await pool.request("GET", "/ping", [], b"", timeout=_PING_TIMEOUT_S)
            except InstanceUnavailable:
                answer = None
            if answer is not None:
                if answer.status == 200:
                    return
                reason = _ping_reason(bytes(answer.body))
                if reason is not None:
                    raise FleetFailed(
                        f"The primary container for production variant {variant} cannot serve "
                        f"the model: {reason}"
                    )
            if loop.time() > deadline:
                raise FleetFailed(
                    f"The primary container for production variant {variant} did not pass the "
                    f"ping health check within {within:g} s. Please check the logs of this "
                    "endpoint (moorage logs)."
                )
            await asyncio.sleep(_PING_INTERVAL_S)

    async def _watch(
        self, fleet: RunningFleet, variant: RunningVariant, running: RunningInstance
    ) -> None:
        exits = [asyncio.ensure_future(i.process.wait()) for i in running.processes]
        done, pending = await asyncio.wait(exits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()
        code = next(iter(done)).result()
        if running.is_stopping:
            return
        for instance in running.processes:
            # One container of a pipeline gone is the whole instance gone.
            if instance.is_running:
                await self._fleet.stop(instance, grace=2.0)
        log.warning(
            "instance %s of %s/%s exited with code %s; replacing it",
            running.route.instance_id,
            fleet.endpoint,
            variant.variant.variant_name,
            code,
        )
        self._detach(variant, running)
        await running.route.close()
        _release_leases(running.route)
        self._on_instance_exit(fleet.endpoint)

    def _detach(self, variant: RunningVariant, running: RunningInstance) -> None:
        if running in variant.instances:
            variant.instances.remove(running)
        if running.route in variant.route.instances:
            variant.route.instances.remove(running.route)

    async def remove_instance(self, variant: RunningVariant, running: RunningInstance) -> None:
        """Take an instance out of the route, let its requests finish, then stop it."""
        running.is_stopping = True
        self._detach(variant, running)
        await _drain(running.route, self._config.invocation_timeout_s)
        await running.route.close()
        await asyncio.gather(*(self._fleet.stop(instance) for instance in running.processes))
        _release_leases(running.route)

    async def stop(self, fleet: RunningFleet) -> None:
        fleet.is_stopped = True
        await asyncio.gather(
            *(
                self.remove_instance(variant, running)
                for variant in fleet.variants.values()
                for running in list(variant.instances)
            )
        )


def _initial_count(variant: RunningVariant) -> int:
    # A serverless variant starts with one instance, which shows at once that the model loads.
    return max(variant.desired_count, 1 if variant.route.serverless is not None else 0)


def _multi_model_source(model: Model) -> MultiModelSource | None:
    container = model.pipeline[0]
    if not container.is_multi_model or container.model_data_url is None:
        return None
    workers = container.environment.get(Env.MODEL_SERVER_WORKERS, "")
    return MultiModelSource(
        ModelPrefix(container.model_data_url),
        is_cache_enabled=container.model_cache_setting is ModelCacheSetting.ENABLED,
        workers=int(workers) if workers.isascii() and workers.isdigit() and int(workers) > 0 else 1,
        is_fetched_here=classify_image(container.image) is ImageKind.LOCAL_COMMAND,
    )


def _release_leases(route: InstanceRoute) -> None:
    # Only once its process is gone: a container may read its models' folders to the end.
    if route.models is not None:
        route.models.release_leases()


def _loaded_models(route: VariantRoute) -> float:
    return float(sum(len(i.models.loaded) for i in route.instances if i.models is not None))


async def _drain(route: InstanceRoute, within: float) -> None:
    """Wait until the instance's requests in flight are answered, for at most ``within`` s."""
    for _ in range(int(within / _DRAIN_POLL_S) + 1):
        if route.outstanding <= 0:
            return
        await asyncio.sleep(_DRAIN_POLL_S)


def _ping_reason(body: bytes) -> str | None:
    """The runtime's ping answers why it cannot serve; other servers say nothing we can use."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if isinstance(payload, dict) and payload.get("status") == "Unhealthy":
        reason = payload.get("reason")
        return str(reason) if reason else None
    return None


def _last_line(instance: Instance) -> str:
    try:
        lines = instance.log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"
