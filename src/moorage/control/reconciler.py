"""The reconciler: brings running fleets to what the store says endpoints should be.

Level-triggered: each pass reads every endpoint and starts at most one operation per endpoint
(create, restore after a restart, heal a dead instance, blue/green update, rescale, delete) as
its own task, so a slow endpoint never holds up the others. API writes wake it; a timer runs it
anyway. Outcomes are recorded through the store's compare-and-set on the endpoint's status.
"""

import asyncio
import dataclasses
import logging
import os
from collections.abc import Awaitable
from functools import partial
from typing import Any

from moorage.capture import CaptureWriter
from moorage.config import ServerConfig
from moorage.control import documents
from moorage.control.deployment import Guard, Rollout, UpdatePhase
from moorage.control.fleets import FleetBuilder, FleetFailed, RunningFleet, RunningVariant
from moorage.control.rollout import Plan, plan
from moorage.control.utilization import FleetUsage
from moorage.domain import EndpointStatus, Model, ProductionVariant
from moorage.errors import MoorageError
from moorage.fleet import LocalProcessFleet
from moorage.metrics import EndpointMetrics
from moorage.routing import AsyncRoute, EndpointRoute, RoutingTable
from moorage.store import DocumentRecord, EndpointRecord, Store

log = logging.getLogger(__name__)

S = EndpointStatus
_PERIOD_S = 1.0
_RETRY_BACKOFF_S = 2.0


def _key(name: str) -> str:
    return name.lower()


class Reconciler:
    def __init__(
        self,
        store: Store,
        fleet: LocalProcessFleet,
        table: RoutingTable,
        metrics: EndpointMetrics,
        config: ServerConfig,
        captures: CaptureWriter | None = None,
    ) -> None:
        self._store = store
        self._table = table
        self._metrics = metrics
        self._config = config
        self._builder = FleetBuilder(
            fleet, metrics, config, lambda _: self.wake(), arena=table.arena, captures=captures
        )
        self._fleets: dict[str, RunningFleet] = {}
        # New fleets left serving by an update whose rollback failed (UpdateRollbackFailed).
        self._stranded: dict[str, RunningFleet] = {}
        self._operations: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # Per endpoint: when healing or following another server may be tried again.
        self._retry_after: dict[str, float] = {}
        self._phases: dict[str, UpdatePhase] = {}
        usage = FleetUsage(config.data_dir)
        metrics.read_utilization(lambda: usage.read(list(self._fleets.values())))

    def wake(self) -> None:
        self._wake.set()

    def fleet(self, endpoint: str) -> RunningFleet | None:
        """The fleet serving ``endpoint`` now (for DescribeEndpoint's current values)."""
        return self._fleets.get(_key(endpoint))

    def update_phase(self, endpoint: str) -> UpdatePhase | None:
        """What the new fleet of ``endpoint``'s update under way here is doing."""
        return self._phases.get(_key(endpoint))

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except Exception:
                log.exception("reconcile pass failed; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), _PERIOD_S)
            except TimeoutError:
                pass
            self._wake.clear()

    async def reconcile_once(self) -> None:
        records = await asyncio.to_thread(self._store.endpoints.all)
        for record in records:
            key = _key(record.name)
            if key in self._operations:
                continue
            operation = self._plan(record)
            if operation is not None:
                self._start(key, operation)
        # Endpoints another server sharing the database deleted, all of it before this one saw
        # them Deleting.
        known = {_key(record.name) for record in records}
        for key in self._fleets.keys() - known - self._operations.keys():
            self._start(key, self._drop(key))

    def _start(self, key: str, operation: Awaitable[None]) -> None:
        task = asyncio.ensure_future(operation)
        self._operations[key] = task

        def done(finished: "asyncio.Task[None]") -> None:
            self._operations.pop(key, None)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("operation on endpoint %s failed", key, exc_info=finished.exception())
            self.wake()

        task.add_done_callback(done)

    def _plan(self, record: EndpointRecord) -> Awaitable[None] | None:
        key = _key(record.name)
        status = record.status
        if status is S.CREATING:
            return self._create(record)
        if status is S.DELETING:
            return self._delete(record)
        if status is S.FAILED:
            return self._stop_fleet(key) if key in self._fleets else None
        if status is S.IN_SERVICE:
            if key not in self._fleets:
                return self._restore(record)
            if self._is_behind(key, record):
                return self._follow(record)
            if self._needs_healing(key):
                return self._heal(record)
            idle = self._builder.idle_serverless(self._fleets[key], self._config.serverless_idle_s)
            if idle:
                return self._scale_down(idle)
            return None
        if status is S.UPDATING:
            if key not in self._fleets:
                return self._restore(record)
            if record.pending_config_name:
                return self._update(record)
            return self._rescale(record)
        if status is S.ROLLING_BACK:
            # A rollback the server stopped in the middle of: the old fleet is brought back.
            if key not in self._fleets:
                return self._restore(record)
            settled = {k: v for k, v in record.document.items() if k != "Pending"}
            return self._finish_rollback(record, record.failure_reason, settled)
        return None

    # building blocks

    async def _variants(
        self, config_name: str, desired: dict[str, Any], resolved: dict[str, Any] | None
    ) -> list[tuple[ProductionVariant, Model, float, int]]:
        """What to run: from the endpoint's snapshot of its config and models when it has one
        (so deleting them later, as SageMaker allows, changes nothing), else from the store."""
        config_record: DocumentRecord | None
        model_records: dict[str, DocumentRecord]
        if resolved is not None:
            config_record, model_records = documents.unsnapshot(resolved)
        else:
            config_record = await asyncio.to_thread(self._store.endpoint_configs.get, config_name)
            model_records = {}
        if config_record is None:
            raise FleetFailed(f'Could not find endpoint configuration "{config_name}".')
        config = documents.endpoint_config(
            config_record.name,
            config_record.arn,
            config_record.creation_time,
            config_record.document,
        )
        result = []
        for variant in config.production_variants:
            model_record = model_records.get(variant.model_name) or await asyncio.to_thread(
                self._store.models.get, variant.model_name
            )
            if model_record is None:
                raise FleetFailed(f'Could not find model "{variant.model_name}".')
            model = documents.model(
                model_record.name, model_record.arn, model_record.creation_time,
                model_record.document,
            )  # fmt: skip
            wanted = desired.get(variant.variant_name, {})
            weight = float(wanted.get("DesiredWeight", variant.initial_variant_weight))
            if variant.serverless_config is not None:
                variant = _serverless(variant, wanted)
                count = _warm_count(variant)
            else:
                count = int(wanted.get("DesiredInstanceCount", variant.initial_instance_count or 1))
            result.append((variant, model, weight, count))
        return result

    async def _build(self, record: EndpointRecord) -> RunningFleet:
        """Start the fleet of the endpoint's current config, as it wants it now."""
        config_name = record.endpoint_config_name
        variants = await self._variants(config_name, _desired(record), _resolved(record))
        capture = record.document.get("DataCaptureConfig")
        settings = documents.data_capture_config(capture) if capture else None
        return await self._builder.build(record.name, config_name, variants, settings)

    def _install(
        self, record: EndpointRecord, fleet: RunningFleet, resolved: dict[str, Any] | None
    ) -> None:
        self._fleets[_key(record.name)] = fleet
        is_multi = any(v.model.pipeline[0].is_multi_model for v in fleet.variants.values())
        route = EndpointRoute(record.name, fleet.route, is_multi_model=is_multi)
        route.asynchronous = _async_route(fleet, resolved)
        route.container_hostnames = frozenset(
            hostname
            for v in fleet.variants.values()
            if v.model.is_direct_pipeline
            for hostname in v.model.container_hostnames
        )
        self._table.set(route)

    async def _stop_fleet(self, key: str) -> None:
        fleet = self._fleets.pop(key, None)
        stranded = self._stranded.pop(key, None)
        self._table.remove(key)
        for running in (fleet, stranded):
            if running is not None:
                await self._builder.stop(running)

    # operations

    async def _create(self, record: EndpointRecord) -> None:
        if await self._bring_up(record) and not await self._set_status(
            record, S.CREATING, S.IN_SERVICE
        ):
            # Deleted meanwhile; or another server sharing the database put it in service
            # first, and this fleet serves it too.
            now = await asyncio.to_thread(self._store.endpoints.get, record.name)
            if now is None or now.status is not S.IN_SERVICE:
                await self._stop_fleet(_key(record.name))

    async def _restore(self, record: EndpointRecord) -> None:
        """After a restart: bring back the fleet of an endpoint that was serving."""
        await self._bring_up(record)

    async def _bring_up(self, record: EndpointRecord) -> bool:
        """Build and route the fleet of the endpoint's current config; on failure the endpoint
        is Failed with the reason."""
        try:
            fleet = await self._build(record)
        except MoorageError as exc:
            log.error("endpoint %s failed: %s", record.name, exc)
            failed = S.UPDATE_ROLLBACK_FAILED if record.status is S.ROLLING_BACK else S.FAILED
            await self._set_status(record, record.status, failed, failure_reason=str(exc))
            return False
        self._install(record, fleet, _resolved(record))
        return True

    def _needs_healing(self, key: str) -> bool:
        fleet = self._fleets[key]
        loop = asyncio.get_running_loop()
        if self._retry_after.get(key, 0.0) > loop.time():
            return False
        return any(len(v.instances) < v.desired_count for v in fleet.variants.values())

    async def _heal(self, record: EndpointRecord) -> None:
        fleet = self._fleets[_key(record.name)]
        for variant in fleet.variants.values():
            while len(variant.instances) < variant.desired_count:
                try:
                    await self._builder.add_instance(fleet, variant)
                except MoorageError as exc:
                    log.error("replacing an instance of %s failed: %s", record.name, exc)
                    loop = asyncio.get_running_loop()
                    self._retry_after[_key(record.name)] = loop.time() + _RETRY_BACKOFF_S
                    return

    async def _scale_down(self, variants: list[RunningVariant]) -> None:
        """Stop the instances of idle serverless variants, down to those kept warm."""
        for variant in variants:
            while len(variant.instances) > variant.desired_count:
                await self._builder.remove_instance(variant, variant.instances[-1])

    async def _rescale(self, record: EndpointRecord) -> None:
        """UpdateEndpointWeightsAndCapacities: new weights at once, then instance counts."""
        try:
            await self._apply_desired(record)
        except MoorageError as exc:
            await self._set_status(record, S.UPDATING, S.IN_SERVICE, failure_reason=str(exc))
            return
        await self._set_status(record, S.UPDATING, S.IN_SERVICE, failure_reason=None)

    def _is_behind(self, key: str, record: EndpointRecord) -> bool:
        """Whether another server sharing the database changed the serving endpoint: its
        config (UpdateEndpoint) or its variants' weights or counts."""
        fleet = self._fleets[key]
        if self._retry_after.get(key, 0.0) > asyncio.get_running_loop().time():
            return False
        return fleet.config_name != record.endpoint_config_name or _drifted(fleet, _desired(record))

    async def _follow(self, record: EndpointRecord) -> None:
        """Bring this server's fleet to the endpoint as another server left it: a new config
        all at once (that server ran the guarded rollout), or new weights and counts."""
        key = _key(record.name)
        old = self._fleets[key]
        try:
            if old.config_name == record.endpoint_config_name:
                await self._apply_desired(record)
                return
            fleet = await self._build(record)
        except MoorageError as exc:
            log.error("following the changes to %s failed: %s", record.name, exc)
            self._retry_after[key] = asyncio.get_running_loop().time() + _RETRY_BACKOFF_S
            return
        self._install(record, fleet, _resolved(record))
        await self._builder.stop(old)

    async def _drop(self, key: str) -> None:
        fleet = self._fleets.get(key)
        await self._stop_fleet(key)
        if fleet is not None:
            for name in fleet.variants:
                self._metrics.forget(fleet.endpoint, name)

    async def _apply_desired(self, record: EndpointRecord) -> None:
        """Bring the fleet's weights and instance counts to the endpoint's desired ones."""
        fleet = self._fleets[_key(record.name)]
        desired = _desired(record)
        for name, variant in fleet.variants.items():
            wanted = desired.get(name, {})
            if "DesiredWeight" in wanted:
                variant.route.weight = float(wanted["DesiredWeight"])
            if "DesiredInstanceCount" in wanted:
                variant.desired_count = int(wanted["DesiredInstanceCount"])
            serverless = variant.route.serverless
            if serverless is not None and "DesiredServerlessConfig" in wanted:
                variant.variant = _serverless(variant.variant, wanted)
                variant.desired_count = _warm_count(variant.variant)
                config = variant.variant.serverless_config
                assert config is not None
                serverless.max_concurrency = config.max_concurrency
                # Serverless variants grow on demand and shrink when idle, not here; a warm
                # instance newly wanted is started by healing.
                continue
            while len(variant.instances) < variant.desired_count:
                await self._builder.add_instance(fleet, variant)
            while len(variant.instances) > variant.desired_count:
                await self._builder.remove_instance(variant, variant.instances[-1])

    async def _update(self, record: EndpointRecord) -> None:
        key = _key(record.name)
        self._phases[key] = UpdatePhase("Creating")
        try:
            await self._roll_out(record)
        finally:
            self._phases.pop(key, None)

    async def _roll_out(self, record: EndpointRecord) -> None:
        """UpdateEndpoint: the new fleet is healthy before any traffic moves to it; traffic
        moves as the DeploymentConfig says, and back if a guardrail trips (``deployment``)."""
        key = _key(record.name)
        blue = self._fleets[key]
        assert record.pending_config_name is not None
        pending = record.document.get("Pending", {})
        settled = {k: v for k, v in record.document.items() if k != "Pending"}
        deployment = pending.get("DeploymentConfig")
        started = asyncio.get_running_loop().time()
        try:
            wanted = await self._variants(
                record.pending_config_name, pending.get("Variants", {}), pending.get("Resolved")
            )
            steps = _plan_update(deployment, blue, wanted)
            variants = wanted
            if steps.batch is not None:
                # Rolling: the new fleet starts with one batch, and grows to what is wanted.
                variants = [(v, m, w, min(c, steps.batch)) for v, m, w, c in wanted]
            capture = pending.get("DataCaptureConfig")
            settings = documents.data_capture_config(capture) if capture else None
            green = await self._builder.build(
                record.name, record.pending_config_name, variants, settings
            )
        except MoorageError as exc:
            log.error("update of %s failed; keeping the current fleet: %s", record.name, exc)
            await self._set_status(
                record,
                S.UPDATING,
                S.IN_SERVICE,
                failure_reason=f"Update to {record.pending_config_name} failed: {exc}",
                pending_config_name=None,
                document=settled,
            )
            return
        route = self._table.get(record.name)
        assert route is not None
        guard = Guard(steps.alarms, timeout_s=steps.timeout_s or 0.0)
        if steps.timeout_s is not None:
            guard.deadline = started + steps.timeout_s
        rollout = Rollout(
            self._builder, route, blue, green, guard, partial(self._phases.__setitem__, key)
        )
        rollout.start()
        if steps.batch is not None:
            for variant, _, _, count in wanted:
                green.variants[variant.variant_name].desired_count = count
            reason = await rollout.rolling(steps.batch, steps.wait_s)
        else:
            reason = await rollout.blue_green(steps.steps)
        if reason is not None:
            await self._roll_back(record, rollout, steps.rollback_batch, reason, settled)
            return
        rollout.finish()
        self._install(record, green, pending.get("Resolved"))
        moved = await self._set_status(
            record,
            S.UPDATING,
            S.IN_SERVICE,
            failure_reason=None,
            endpoint_config_name=record.pending_config_name,
            pending_config_name=None,
            document={
                **settled,
                "Variants": pending.get("Variants", {}),
                "DeploymentConfig": deployment,
                "Resolved": pending.get("Resolved"),
                "DataCaptureConfig": pending.get("DataCaptureConfig"),
            },
        )
        if steps.termination_wait_s:
            await asyncio.sleep(steps.termination_wait_s)
        await self._builder.stop(blue)
        if not moved:
            self.wake()

    async def _roll_back(
        self,
        record: EndpointRecord,
        rollout: Rollout,
        batch: int | None,
        reason: str,
        settled: dict[str, Any],
    ) -> None:
        """Updating -> RollingBack -> InService on the old config, with ``reason``; or
        UpdateRollbackFailed, both fleets serving, if the old one cannot be restored."""
        log.warning("rolling back the update of %s: %s", record.name, reason)
        moving = await self._set_status(record, S.UPDATING, S.ROLLING_BACK, failure_reason=reason)
        failure = await rollout.roll_back(batch)
        if failure is not None:
            self._stranded[_key(record.name)] = rollout.green
            if moving:
                await self._set_status(
                    record,
                    S.ROLLING_BACK,
                    S.UPDATE_ROLLBACK_FAILED,
                    failure_reason=f"{reason} {failure}",
                )
            return
        if moving:
            await self._finish_rollback(record, reason, settled)

    async def _finish_rollback(
        self, record: EndpointRecord, reason: str | None, settled: dict[str, Any]
    ) -> None:
        await self._set_status(
            record,
            S.ROLLING_BACK,
            S.IN_SERVICE,
            failure_reason=reason,
            pending_config_name=None,
            document=settled,
        )

    async def _delete(self, record: EndpointRecord) -> None:
        await self._drop(_key(record.name))
        await asyncio.to_thread(self._store.endpoints.delete, record.name)

    async def _set_status(
        self, record: EndpointRecord, expected: S, new: S, **changes: Any
    ) -> bool:
        return await asyncio.to_thread(
            self._store.endpoints.set_status, record.name, expected, new, **changes
        )

    async def stop(self) -> None:
        """Stop every operation and every fleet (server shutdown)."""
        for task in list(self._operations.values()):
            task.cancel()
        await asyncio.gather(*self._operations.values(), return_exceptions=True)
        fleets = [*self._fleets.values(), *self._stranded.values()]
        await asyncio.gather(*(self._builder.stop(f) for f in fleets), return_exceptions=True)
        self._fleets.clear()
        self._stranded.clear()


def _async_route(fleet: RunningFleet, resolved: dict[str, Any] | None) -> AsyncRoute | None:
    document = documents.deployed_config(resolved)
    if not document.get("AsyncInferenceConfig"):
        return None
    config = documents.async_inference_config(document["AsyncInferenceConfig"])
    per_instance = config.max_concurrent_invocations_per_instance
    if per_instance is None:
        # SageMaker picks a number; moorage's: the instance's worker processes, one each.
        workers = [
            v.model.pipeline[0].environment.get("SAGEMAKER_MODEL_SERVER_WORKERS", "")
            for v in fleet.variants.values()
        ]
        per_instance = min(
            (int(w) for w in workers if w.isascii() and w.isdigit()), default=os.cpu_count() or 1
        )
    return AsyncRoute(config, max(1, per_instance))


def _drifted(fleet: RunningFleet, desired: dict[str, Any]) -> bool:
    """Whether an instance-based variant's weight or count differs from what the endpoint
    wants: another server sharing the database applied UpdateEndpointWeightsAndCapacities."""
    for name, running in fleet.variants.items():
        if running.variant.serverless_config is not None:
            continue
        wanted = desired.get(name, {})
        weight = float(wanted.get("DesiredWeight", running.variant.initial_variant_weight))
        count = int(wanted.get("DesiredInstanceCount", running.variant.initial_instance_count or 1))
        if weight != running.route.weight or count != running.desired_count:
            return True
    return False


def _resolved(record: EndpointRecord) -> dict[str, Any] | None:
    resolved = record.document.get("Resolved")
    return dict(resolved) if resolved else None


def _desired(record: EndpointRecord) -> dict[str, Any]:
    return dict(record.document.get("Variants", {}))


def _serverless(variant: ProductionVariant, wanted: dict[str, Any]) -> ProductionVariant:
    """The variant with the serverless config the endpoint wants now (it may have been changed
    by UpdateEndpointWeightsAndCapacities since the endpoint config was made)."""
    desired = wanted.get("DesiredServerlessConfig")
    if desired is None:
        return variant
    return dataclasses.replace(variant, serverless_config=documents.serverless_config(desired))


def _warm_count(variant: ProductionVariant) -> int:
    """Instances a serverless variant keeps when idle: one for any provisioned concurrency."""
    assert variant.serverless_config is not None
    return 1 if variant.serverless_config.provisioned_concurrency else 0


def _instance_count(fleet: RunningFleet) -> int:
    return sum(v.desired_count for v in fleet.variants.values())


def _plan_update(
    deployment_config: dict[str, Any] | None,
    blue: RunningFleet,
    green: list[tuple[ProductionVariant, Model, float, int]],
) -> Plan:
    counts = [count for variant, _, _, count in green if variant.serverless_config is None]
    old = [v for v in blue.variants.values() if v.variant.serverless_config is None]
    return plan(
        deployment_config,
        sum(counts),
        old_instances=sum(v.desired_count for v in old),
        is_guarded=len(counts) == len(green),
        can_roll=len(counts) == 1 and len(green) == 1 and len(old) == len(blue.variants) == 1,
    )
