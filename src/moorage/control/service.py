"""Use cases of the control plane: validate, write desired state, wake the reconciler.

Synchronous (the API runs them off the event loop); every call returns at once, as SageMaker's
do: an endpoint is ``Creating``, ``Updating`` or ``Deleting`` until the reconciler is done.
Inputs are wire documents already checked against botocore's model by ``api``; this layer adds
the rules that span resources (a config's models exist, an endpoint is in a status that allows
the change) and those moorage itself imposes (which images can run here).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from moorage.capture import check_config as check_capture
from moorage.capture import destination
from moorage.config import ServerConfig
from moorage.control import documents
from moorage.control.deployment import UpdatePhase
from moorage.control.fleets import RunningFleet
from moorage.control.guardrails import check_deployment_config
from moorage.domain import (
    ENDPOINT_TRANSITIONAL,
    AsyncInferenceConfig,
    EndpointStatus,
    Model,
    ProductionVariant,
    ResourceKind,
    TransformJobStatus,
    arn,
    check_instance_count,
    parse_arn,
)
from moorage.errors import NotFound, ValidationError
from moorage.fleet import MEMORY_BUDGET_VAR, classify_image
from moorage.store import (
    EndpointConfigRecord,
    EndpointRecord,
    ListQuery,
    ModelRecord,
    Page,
    Store,
    TransformJobRecord,
)

S = EndpointStatus
Document = Mapping[str, Any]


class FleetView(Protocol):
    def fleet(self, endpoint: str) -> RunningFleet | None: ...

    def update_phase(self, endpoint: str) -> "UpdatePhase | None": ...


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as DescribeEndpoint shows it: the record, its configs, and what runs."""

    record: EndpointRecord
    config: EndpointConfigRecord | None
    fleet: RunningFleet | None
    images: dict[str, str]
    # Where an update under way is: the new fleet's VariantStatus.
    phase: "UpdatePhase | None" = None


def _now() -> datetime:
    return datetime.now(UTC)


class ControlService:
    def __init__(
        self,
        store: Store,
        config: ServerConfig,
        *,
        wake: Callable[[], object],
        fleets: FleetView,
        wake_jobs: Callable[[], object] = lambda: None,
    ) -> None:
        self._store = store
        self._config = config
        self._wake = wake
        self._fleets = fleets
        self._wake_jobs = wake_jobs

    def arn(self, kind: ResourceKind, name: str) -> str:
        return arn(kind, name, region=self._config.region, account=self._config.account)

    # models

    def create_model(self, document: Document, tags: list[dict[str, str]]) -> ModelRecord:
        name = document["ModelName"]
        model_arn = self.arn(ResourceKind.MODEL, name)
        model = documents.model(name, model_arn, _now(), document)
        if model.containers:
            _check_pipeline(model)
        for container in model.pipeline:
            classify_image(container.image)
            if container.is_multi_model and not container.model_data_url:
                raise ValidationError(
                    f"Model '{name}' is in MultiModel mode, which needs ModelDataUrl: the "
                    "prefix (s3://bucket/prefix/ or a folder) that TargetModel paths are under."
                )
            budget = container.environment.get(MEMORY_BUDGET_VAR)
            # isascii: str.isdigit() takes '²' too, which int() refuses.
            if budget is not None and not (
                budget.isascii() and budget.isdigit() and int(budget) > 0
            ):
                raise ValidationError(
                    f"Environment {MEMORY_BUDGET_VAR}={budget!r} of model '{name}' must be a "
                    "positive whole number of MiB."
                )
        record = self._store.models.create(name, model_arn, document, model.creation_time)
        self._tag(model_arn, tags)
        return record

    def model(self, name: str) -> ModelRecord:
        record = self._store.models.get(name)
        if record is None:
            raise NotFound(f'Could not find model "{self.arn(ResourceKind.MODEL, name)}".')
        return record

    def list_models(self, query: ListQuery) -> Page[ModelRecord]:
        return self._store.models.list(query)

    def delete_model(self, name: str) -> None:
        record = self.model(name)
        self._store.models.delete(name)
        self._store.tags.delete_all(record.arn)

    # endpoint configs

    def create_endpoint_config(
        self, document: Document, tags: list[dict[str, str]]
    ) -> EndpointConfigRecord:
        name = document["EndpointConfigName"]
        config_arn = self.arn(ResourceKind.ENDPOINT_CONFIG, name)
        for unsupported in (
            "ShadowProductionVariants",
            "ExplainerConfig",
        ):
            if document.get(unsupported):
                raise ValidationError(f"{unsupported} is not supported by moorage yet.")
        for v in document["ProductionVariants"]:
            if not v.get("ModelName"):
                # Optional in the model only for inference-component endpoints, which moorage
                # does not host; without this check the variant fails later, as a 500.
                raise ValidationError(
                    f"Variant '{v['VariantName']}' has no ModelName; moorage does not support "
                    "inference components, so every production variant names its model."
                )
        config = documents.endpoint_config(name, config_arn, _now(), document)
        check_capture(config)
        if config.async_inference_config is not None:
            _check_async_config(config.async_inference_config)
        variants = config.production_variants
        for variant in variants:
            model = self.model(variant.model_name)
            if variant.is_serverless:
                self._check_serverless(variant.variant_name, len(variants), model)
            if config.is_async:
                self._check_async(variant, model)
        record = self._store.endpoint_configs.create(
            name, config_arn, document, config.creation_time
        )
        self._tag(config_arn, tags)
        return record

    @staticmethod
    def _check_serverless(variant: str, variant_count: int, model: ModelRecord) -> None:
        # What SageMaker's serverless endpoints do not support (spec/LIMITS.md §3).
        if variant_count > 1:
            raise ValidationError(
                f"Variant '{variant}' is serverless: a serverless endpoint config has exactly "
                "one production variant."
            )
        if model.document.get("PrimaryContainer", {}).get("Mode") == "MultiModel":
            raise ValidationError(
                f"Variant '{variant}' is serverless, and serverless endpoints do not support "
                f"multi-model endpoints (model '{model.name}' is in MultiModel mode)."
            )

    @staticmethod
    def _check_async(variant: ProductionVariant, model: ModelRecord) -> None:
        # Asynchronous endpoints run on instances, one model each (spec/LIMITS.md §4).
        if variant.is_serverless:
            raise ValidationError(
                f"Variant '{variant.variant_name}' is serverless, and serverless endpoints do "
                "not support AsyncInferenceConfig."
            )
        if model.document.get("PrimaryContainer", {}).get("Mode") == "MultiModel":
            raise ValidationError(
                f"Model '{model.name}' is in MultiModel mode, and multi-model endpoints do not "
                "support AsyncInferenceConfig."
            )

    def endpoint_config(self, name: str) -> EndpointConfigRecord:
        record = self._store.endpoint_configs.get(name)
        if record is None:
            config_arn = self.arn(ResourceKind.ENDPOINT_CONFIG, name)
            raise NotFound(f'Could not find endpoint configuration "{config_arn}".')
        return record

    def list_endpoint_configs(self, query: ListQuery) -> Page[EndpointConfigRecord]:
        return self._store.endpoint_configs.list(query)

    def delete_endpoint_config(self, name: str) -> None:
        record = self.endpoint_config(name)
        self._store.endpoint_configs.delete(name)
        self._store.tags.delete_all(record.arn)

    # endpoints

    def create_endpoint(self, document: Document, tags: list[dict[str, str]]) -> EndpointRecord:
        name = document["EndpointName"]
        config = self.endpoint_config(document["EndpointConfigName"])
        endpoint_arn = self.arn(ResourceKind.ENDPOINT, name)
        variants = _initial_variants(config)
        check_deployment_config(document.get("DeploymentConfig"), _instance_counts(variants))
        state: dict[str, Any] = {"Variants": variants, "Resolved": self._snapshot(config)}
        if document.get("DeploymentConfig"):
            state["DeploymentConfig"] = document["DeploymentConfig"]
        if config.document.get("DataCaptureConfig"):
            state["DataCaptureConfig"] = config.document["DataCaptureConfig"]
        record = self._store.endpoints.create(
            name,
            endpoint_arn,
            endpoint_config_name=config.name,
            document=state,
            creation_time=_now(),
        )
        self._tag(endpoint_arn, tags)
        self._wake()
        return record

    def _snapshot(self, config: EndpointConfigRecord) -> dict[str, Any]:
        """The config and its models as the endpoint will run them: later deletes of either
        (which SageMaker allows) do not change a deployed endpoint, across restarts too."""
        names = {v["ModelName"] for v in config.document.get("ProductionVariants", ())}
        return documents.snapshot(config, {name: self.model(name) for name in sorted(names)})

    def endpoint(self, name: str) -> EndpointRecord:
        record = self._store.endpoints.get(name)
        if record is None:
            raise NotFound(f'Could not find endpoint "{self.arn(ResourceKind.ENDPOINT, name)}".')
        return record

    def describe_endpoint(self, name: str) -> EndpointView:
        record = self.endpoint(name)
        config = self._store.endpoint_configs.get(record.endpoint_config_name)
        return EndpointView(
            record,
            config,
            self._fleets.fleet(name),
            _deployed_images(record),
            self._fleets.update_phase(name),
        )

    def list_endpoints(self, query: ListQuery) -> Page[EndpointRecord]:
        return self._store.endpoints.list(query)

    def update_endpoint(self, params: Document) -> EndpointRecord:
        record = self._serving(params["EndpointName"])
        config = self.endpoint_config(params["EndpointConfigName"])
        current = dict(record.document.get("Variants", {}))
        variants = _initial_variants(config)
        is_serverless = any(_is_serverless(v) for v in variants.values())
        if is_serverless and not all(_is_serverless(v) for v in current.values()):
            raise ValidationError(
                f'Cannot update endpoint "{record.arn}" from instance-based variants to '
                f"serverless ones ({config.name}); create a new endpoint instead."
            )
        if bool(config.document.get("AsyncInferenceConfig")) != _is_async(record):
            raise ValidationError(
                f'Cannot update endpoint "{record.arn}" between real-time and asynchronous '
                f"inference ({config.name}); create a new endpoint instead."
            )
        capture = config.document.get("DataCaptureConfig")
        if params.get("RetainAllVariantProperties"):
            excluded = {
                p["VariantPropertyType"] for p in params.get("ExcludeRetainedVariantProperties", ())
            }
            for name, wanted in variants.items():
                for prop in ("DesiredWeight", "DesiredInstanceCount"):
                    if name in current and prop not in excluded and prop in current[name]:
                        wanted[prop] = current[name][prop]
            if "DataCaptureConfig" not in excluded:
                # The endpoint's, even none: the new config's applies only when excluded.
                capture = record.document.get("DataCaptureConfig")
        deployment = params.get("DeploymentConfig")
        if deployment is None and params.get("RetainDeploymentConfig"):
            deployment = record.document.get("DeploymentConfig")
        check_deployment_config(deployment, _instance_counts(variants))
        state = dict(record.document)
        state["Pending"] = {
            "Variants": variants,
            "DeploymentConfig": deployment,
            "Resolved": self._snapshot(config),
            "DataCaptureConfig": capture,
        }
        if not self._store.endpoints.set_status(
            record.name,
            S.IN_SERVICE,
            S.UPDATING,
            pending_config_name=config.name,
            document=state,
        ):
            raise self._in_progress(record.name)
        self._wake()
        return record

    def update_weights_and_capacities(
        self, name: str, desired: list[dict[str, Any]]
    ) -> EndpointRecord:
        record = self._serving(name)
        variants = {n: dict(v) for n, v in record.document.get("Variants", {}).items()}
        for change in desired:
            variant = change["VariantName"]
            if variant not in variants:
                raise ValidationError(
                    f"The variant {variant} does not exist on endpoint {record.name}."
                )
            wanted = variants[variant]
            if "DesiredInstanceCount" in change:
                where = f"Variant '{variant}' DesiredInstanceCount"
                check_instance_count(change["DesiredInstanceCount"], where)
            for prop in ("DesiredWeight", "DesiredInstanceCount"):
                if prop in change:
                    wanted[prop] = change[prop]
            _change_serverless(record.name, variant, wanted, change)
        state = {**record.document, "Variants": variants}
        if not self._store.endpoints.set_status(
            record.name, S.IN_SERVICE, S.UPDATING, document=state
        ):
            raise self._in_progress(record.name)
        self._wake()
        return record

    def delete_endpoint(self, name: str) -> None:
        record = self.endpoint(name)
        if record.status is S.DELETING:
            return
        if not self._store.endpoints.set_status(
            record.name, record.status, S.DELETING, failure_reason=record.failure_reason
        ):
            raise self._in_progress(record.name)
        self._store.async_invocations.forget_endpoint(record.name)
        self._wake()

    def _serving(self, name: str) -> EndpointRecord:
        record = self.endpoint(name)
        if record.status is not S.IN_SERVICE:
            if record.status in ENDPOINT_TRANSITIONAL:
                raise self._in_progress(record.name)
            raise ValidationError(
                f'Cannot update endpoint "{record.arn}" in status {record.status}; '
                "it must be InService."
            )
        return record

    def _in_progress(self, name: str) -> ValidationError:
        endpoint_arn = self.arn(ResourceKind.ENDPOINT, name)
        return ValidationError(f'Cannot update in-progress endpoint "{endpoint_arn}".')

    # transform jobs

    def create_transform_job(
        self, document: Document, tags: list[dict[str, str]]
    ) -> TransformJobRecord:
        """Store a job InProgress, with its model as of now (deleting the model later changes
        nothing, across restarts too). Its settings are checked by the caller (``jobs``)."""
        name = document["TransformJobName"]
        for unsupported in ("DataCaptureConfig",):
            if document.get(unsupported):
                raise ValidationError(
                    f"{unsupported} is not supported by moorage for transform jobs yet."
                )
        model = self.model(document["ModelName"])
        container = model.document.get("PrimaryContainer", {})
        if container.get("Mode") == "MultiModel":
            raise ValidationError(
                f"Model '{model.name}' is in MultiModel mode, which transform jobs do not run."
            )
        classify_image(container.get("Image"))
        job_arn = self.arn(ResourceKind.TRANSFORM_JOB, name)
        state = {
            **document,
            "ResolvedModel": {
                "Name": model.name,
                "Arn": model.arn,
                "CreationTime": model.creation_time.isoformat(),
                "Document": dict(model.document),
            },
        }
        record = self._store.transform_jobs.create(name, job_arn, state, _now())
        self._tag(job_arn, tags)
        self._wake_jobs()
        return record

    def transform_job(self, name: str) -> TransformJobRecord:
        record = self._store.transform_jobs.get(name)
        if record is None:
            raise NotFound(f"Could not find requested job with name {name}")
        return record

    def list_transform_jobs(self, query: ListQuery) -> Page[TransformJobRecord]:
        return self._store.transform_jobs.list(query)

    def stop_transform_job(self, name: str) -> None:
        """InProgress -> Stopping; the runner stops it and records Stopped. Stopping a job that
        is stopping already does nothing."""
        record = self.transform_job(name)
        if record.status is TransformJobStatus.STOPPING:
            return
        if record.status is not TransformJobStatus.IN_PROGRESS or not (
            self._store.transform_jobs.set_status(
                record.name, TransformJobStatus.IN_PROGRESS, TransformJobStatus.STOPPING
            )
        ):
            current = self.transform_job(name).status
            if current is TransformJobStatus.STOPPING:
                return  # another StopTransformJob came first
            raise ValidationError(
                f"Transform job {record.name} is {current}; only an InProgress job can be stopped."
            )
        self._wake_jobs()

    # tags

    def _tag(self, resource_arn: str, tags: list[dict[str, str]]) -> None:
        if tags:
            self._store.tags.add(resource_arn, {t["Key"]: t.get("Value", "") for t in tags})

    def _check_resource(self, resource_arn: str) -> None:
        parsed = parse_arn(resource_arn)
        if parsed is not None and (parsed.region, parsed.account) != (
            self._config.region,
            self._config.account,
        ):
            # Another region's or account's resource: none of ours, whatever its name.
            parsed = None
        lookups: dict[ResourceKind, Callable[[str], object]] = {
            ResourceKind.MODEL: self._store.models.get,
            ResourceKind.ENDPOINT_CONFIG: self._store.endpoint_configs.get,
            ResourceKind.ENDPOINT: self._store.endpoints.get,
            ResourceKind.TRANSFORM_JOB: self._store.transform_jobs.get,
        }
        lookup = lookups.get(parsed.kind) if parsed is not None else None
        if parsed is None or lookup is None or lookup(parsed.name) is None:
            raise NotFound(f'Could not find resource "{resource_arn}".')

    def add_tags(self, resource_arn: str, tags: list[dict[str, str]]) -> None:
        self._check_resource(resource_arn)
        self._tag(resource_arn, tags)

    def list_tags(self, resource_arn: str, next_token: str | None, max_results: int) -> Page[Any]:
        self._check_resource(resource_arn)
        return self._store.tags.list(resource_arn, next_token=next_token, max_results=max_results)

    def delete_tags(self, resource_arn: str, keys: list[str]) -> None:
        self._check_resource(resource_arn)
        self._store.tags.delete(resource_arn, keys)


def _check_pipeline(model: Model) -> None:
    """What SageMaker requires of an inference pipeline's containers."""
    named = [c.container_hostname for c in model.containers if c.container_hostname]
    if named and len(named) != len(model.containers):
        raise ValidationError(
            f"Model '{model.name}': when one container of an inference pipeline sets "
            "ContainerHostname, every container must."
        )
    if len(set(named)) != len(named):
        raise ValidationError(
            f"Model '{model.name}': the ContainerHostname of each pipeline container must be "
            "unique."
        )
    if any(c.is_multi_model for c in model.containers):
        raise ValidationError(
            f"Model '{model.name}': the containers of an inference pipeline cannot be in "
            "MultiModel mode."
        )


def _deployed_images(record: EndpointRecord) -> dict[str, str]:
    """Each variant's image as the endpoint deployed it: from the endpoint's own snapshot, since
    SageMaker allows deleting the config and the models of a running endpoint."""
    resolved = record.document.get("Resolved") or {}
    config = documents.deployed_config(resolved)
    models = resolved.get("Models", {})
    images: dict[str, str] = {}
    for variant in config.get("ProductionVariants", ()):
        model = models.get(variant.get("ModelName"), {}).get("Document")
        if model is not None:
            container = model.get("PrimaryContainer", {})
            images[variant["VariantName"]] = container.get("Image", "moorage")
    return images


def _initial_variants(config: EndpointConfigRecord) -> dict[str, dict[str, Any]]:
    """Each variant's desired weight, and its instance count or its serverless config."""
    variants: dict[str, dict[str, Any]] = {}
    for v in config.document.get("ProductionVariants", ()):
        wanted: dict[str, Any] = {"DesiredWeight": float(v.get("InitialVariantWeight", 1.0))}
        if "ServerlessConfig" in v:
            wanted["DesiredServerlessConfig"] = dict(v["ServerlessConfig"])
        else:
            wanted["DesiredInstanceCount"] = int(v.get("InitialInstanceCount", 1))
        variants[v["VariantName"]] = wanted
    return variants


def _instance_counts(variants: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Instances of each variant; none when the endpoint is serverless."""
    if any(_is_serverless(v) for v in variants.values()):
        return {}
    return {name: int(v["DesiredInstanceCount"]) for name, v in variants.items()}


def _check_async_config(config: AsyncInferenceConfig) -> None:
    """Raise ValidationError for results moorage could not write."""
    destination(config.s3_output_path, "S3OutputPath")
    if config.s3_failure_path:
        destination(config.s3_failure_path, "S3FailurePath")


def _is_async(record: EndpointRecord) -> bool:
    return bool(
        documents.deployed_config(record.document.get("Resolved")).get("AsyncInferenceConfig")
    )


def _is_serverless(wanted: dict[str, Any]) -> bool:
    return "DesiredServerlessConfig" in wanted


def _change_serverless(
    endpoint: str, variant: str, wanted: dict[str, Any], change: dict[str, Any]
) -> None:
    """Apply a ServerlessUpdateConfig, which only serverless variants take, and they only."""
    update = change.get("ServerlessUpdateConfig")
    if not _is_serverless(wanted):
        if update is not None:
            raise ValidationError(
                f"Variant {variant} of endpoint {endpoint} is not serverless; "
                "ServerlessUpdateConfig does not apply to it."
            )
        return
    if "DesiredInstanceCount" in change:
        raise ValidationError(
            f"Variant {variant} of endpoint {endpoint} is serverless: change its "
            "ServerlessUpdateConfig, not DesiredInstanceCount."
        )
    desired = {**wanted["DesiredServerlessConfig"], **(update or {})}
    documents.serverless_config(desired)  # MaxConcurrency and ProvisionedConcurrency agree
    wanted["DesiredServerlessConfig"] = desired
