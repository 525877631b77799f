"""An update's traffic moving from the old fleet (blue) to the new one (green), and back when a
guardrail trips.

Blue/green: green runs whole before any traffic moves, then takes its share in the steps of
``traffic_steps``, baking after each. Rolling: green starts with one batch of instances; each
round gives it the share of traffic its instances make of the target count, bakes, stops as
many blue instances, and starts the next batch, so the endpoint never runs more than its
instances plus one batch.

While baking, a ``Guard`` watches the alarms over what green itself served (a tee of each
variant's metrics, which blue and green share) and the deadline from
MaximumExecutionTimeoutInSeconds. Rolling back gives blue all of its instances again (in
batches of RollbackMaximumBatchSize for a rolling update), takes all traffic back, and stops
green.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from moorage.control.alarms import Alarm
from moorage.control.fleets import FleetBuilder, RunningFleet, RunningVariant
from moorage.errors import MoorageError
from moorage.metrics import VariantMetrics
from moorage.routing import EndpointRoute

log = logging.getLogger(__name__)

_POLL_S = 0.2


@dataclass
class Guard:
    """Why an update must roll back, if it must: an alarm over green's metrics, or time."""

    alarms: tuple[Alarm, ...] = ()
    deadline: float | None = None  # event-loop time
    timeout_s: float = 0.0
    # Green's variants: what each has served since traffic started moving to it.
    watched: dict[str, VariantMetrics] = field(default_factory=dict)

    def reason(self, now: float) -> str | None:
        for alarm in self.alarms:
            for variant, metrics in self.watched.items():
                value = alarm.value(metrics)
                if value is not None and value > alarm.threshold:
                    return (
                        f"Alarm '{alarm.name}' fired on variant {variant} of the new fleet "
                        f"({alarm.statistic} of {alarm.metric}: {value:g}); the update was "
                        "rolled back."
                    )
        if self.deadline is not None and now >= self.deadline:
            return (
                f"The update was still baking after MaximumExecutionTimeoutInSeconds "
                f"({self.timeout_s:g} s); it was rolled back."
            )
        return None


@dataclass(frozen=True, slots=True)
class UpdatePhase:
    """What the new fleet of an update is doing: SageMaker's VariantStatus ``Creating``,
    ``ActivatingTraffic`` or ``Baking``, since ``started``."""

    status: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Rollout:
    """Moves ``route``'s traffic from ``blue`` to ``green``; ``run`` and ``roll_back`` answer
    why it stopped, or None."""

    builder: FleetBuilder
    route: EndpointRoute
    blue: RunningFleet
    green: RunningFleet
    guard: Guard
    # Told each phase, for DescribeEndpoint.
    on_phase: Callable[[UpdatePhase], None] = lambda _: None

    def __post_init__(self) -> None:
        self._shared = {name: v.route.metrics for name, v in self.green.variants.items()}

    def start(self) -> None:
        """Route to green (at no share yet) and start watching what it serves."""
        for name, variant in self.green.variants.items():
            variant.route.metrics = self.guard.watched[name] = self._shared[name].tee()
        self.route.next = self.green.route
        self.route.next_share = 0.0

    def finish(self) -> None:
        """Green's variants record into their shared series alone again."""
        for name, variant in self.green.variants.items():
            variant.route.metrics = self._shared[name]

    async def bake(self, seconds: float) -> str | None:
        self.on_phase(UpdatePhase("Baking"))
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            reason = self.guard.reason(loop.time())
            if reason is not None or loop.time() >= end:
                return reason
            await asyncio.sleep(min(_POLL_S, end - loop.time()))

    async def blue_green(self, steps: list[tuple[float, float]]) -> str | None:
        for share, wait_s in steps:
            self.on_phase(UpdatePhase("ActivatingTraffic"))
            self.route.next_share = share
            reason = await self.bake(wait_s)
            if reason is not None:
                return reason
        return None

    async def rolling(self, batch: int, wait_s: float) -> str | None:
        """Green was built with one batch; its variant's ``desired_count`` is the target."""
        old, new = _only(self.blue), _only(self.green)
        target = new.desired_count
        while True:
            self.on_phase(UpdatePhase("ActivatingTraffic"))
            self.route.next_share = min(1.0, len(new.instances) / target)
            reason = await self.bake(wait_s)
            if reason is not None or len(new.instances) >= target:
                return reason
            # Blue keeps one instance while it still takes traffic.
            await self._remove(old, min(batch, len(old.instances) - 1))
            self.on_phase(UpdatePhase("Creating"))
            try:
                await self._add(self.green, new, min(batch, target - len(new.instances)))
            except MoorageError as exc:
                return f"Starting an instance of the new fleet failed: {exc}; rolled back."

    async def roll_back(self, batch: int | None) -> str | None:
        """All traffic back on blue, at full strength, and green stopped. ``batch``: blue
        instances started at a time (a rolling update), None when blue is whole. Answers why
        blue could not be restored, if it could not (green then keeps serving)."""
        self.finish()
        if batch is not None:
            old, new = _only(self.blue), _only(self.green)
            while len(old.instances) < old.desired_count:
                try:
                    await self._add(
                        self.blue, old, min(batch, old.desired_count - len(old.instances))
                    )
                except MoorageError as exc:
                    return f"Restarting the old fleet failed: {exc}"
                green_share = 1.0 - len(old.instances) / old.desired_count
                self.route.next_share = min(self.route.next_share, green_share)
                if green_share > 0:
                    await self._remove(new, min(batch, len(new.instances) - 1))
        self.route.next_share = 0.0
        self.route.next = None
        await self.builder.stop(self.green)
        return None

    async def _add(self, fleet: RunningFleet, variant: RunningVariant, count: int) -> None:
        results = await asyncio.gather(
            *(self.builder.add_instance(fleet, variant) for _ in range(count)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _remove(self, variant: RunningVariant, count: int) -> None:
        doomed = variant.instances[len(variant.instances) - count :] if count > 0 else []
        await asyncio.gather(*(self.builder.remove_instance(variant, i) for i in doomed))


def _only(fleet: RunningFleet) -> RunningVariant:
    (variant,) = fleet.variants.values()
    return variant
