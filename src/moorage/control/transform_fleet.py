"""Instances for transform jobs: the model's container started as an endpoint's would be, for
the length of one job.

The batch runner (``jobs.transform``) gets them through its ``InstanceStarter`` protocol, which
this satisfies, so ``jobs`` needs nothing from ``control``. Instances log where an endpoint's
do, under the job's name (``moorage logs <job>`` shows them), and their invocations stay out of
the endpoints' metrics.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from moorage.config import ServerConfig
from moorage.control import documents
from moorage.control.fleets import FleetBuilder, RunningFleet
from moorage.domain import ProductionVariant
from moorage.fleet import LocalProcessFleet
from moorage.metrics import EndpointMetrics
from moorage.routing import InstanceRoute

#: The variant the job's instances are started as; also their log folder under the job's.
VARIANT: Final = "TransformJob"


class JobFleet:
    """The instances of one job."""

    def __init__(self, builder: FleetBuilder, fleet: RunningFleet) -> None:
        self._builder = builder
        self._fleet = fleet

    @property
    def routes(self) -> Sequence[InstanceRoute]:
        return [running.route for running in self._fleet.variants[VARIANT].instances]

    async def stop(self) -> None:
        await self._builder.stop(self._fleet)


class TransformFleets:
    def __init__(self, fleet: LocalProcessFleet, config: ServerConfig) -> None:
        # A death is seen by the job as failed requests: nothing to heal for a job.
        self._builder = FleetBuilder(fleet, EndpointMetrics(), config, lambda _: None)

    async def start(
        self,
        job: str,
        model: Mapping[str, Any],
        instance_type: str,
        count: int,
        environment: Mapping[str, str],
    ) -> JobFleet:
        """Start ``count`` instances of ``model`` (a snapshot entry, as ``documents.snapshot``
        makes) with ``environment`` over its own; FleetFailed if any cannot start."""
        resolved = documents.model(
            model["Name"],
            model["Arn"],
            datetime.fromisoformat(model["CreationTime"]),
            model["Document"],
        )
        # Every container of the model (of a pipeline, each one) gets the job's variables.
        containers = [
            dataclasses.replace(c, environment={**c.environment, **environment})
            for c in resolved.pipeline
        ]
        if resolved.primary_container is not None:
            resolved = dataclasses.replace(resolved, primary_container=containers[0])
        else:
            resolved = dataclasses.replace(resolved, containers=tuple(containers))
        variant = ProductionVariant(
            variant_name=VARIANT,
            model_name=resolved.name,
            instance_type=instance_type,
            initial_instance_count=count,
        )
        fleet = await self._builder.build(job, job, [(variant, resolved, 1.0, count)])
        return JobFleet(self._builder, fleet)
