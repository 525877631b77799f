"""The hosting resources as immutable records: models, endpoint configs, endpoints.

Field names are SageMaker's members in snake_case, holding only what moorage acts on (members
that SageMaker only stores and echoes stay in the store's JSON). ``__post_init__`` enforces the
rules that span members, which botocore's model cannot express; per-member limits (lengths,
patterns, ranges) are checked on the wire by ``api.validation``. Times are timezone-aware UTC.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from moorage.domain.status import EndpointStatus
from moorage.errors import LimitExceeded, ValidationError

# Instances of one variant or transform job. botocore's model sets no maximum, and each
# instance is a local process: a count like 10**12 would hang the server while it starts them,
# so moorage refuses it as SageMaker refuses a count over the account's quota.
MAX_INSTANCE_COUNT: Final = 100


def check_instance_count(count: int, where: str) -> None:
    """Raise LimitExceeded if ``count`` instances are more than moorage starts for one variant
    or job; ``where`` names the member (``Variant 'v' InitialInstanceCount``)."""
    if count > MAX_INSTANCE_COUNT:
        raise LimitExceeded(
            f"{where} is {count}; moorage runs at most {MAX_INSTANCE_COUNT} instances of a "
            "variant or transform job."
        )


class ContainerMode(StrEnum):
    """``ContainerDefinition.Mode``: one model, or many loaded on demand from an S3 prefix."""

    SINGLE_MODEL = "SingleModel"
    MULTI_MODEL = "MultiModel"


class ModelCacheSetting(StrEnum):
    """``MultiModelConfig.ModelCacheSetting``: whether loaded models stay cached."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"


class InferenceExecutionMode(StrEnum):
    """``InferenceExecutionConfig.Mode`` of a pipeline: chained, or each container addressed."""

    SERIAL = "Serial"
    DIRECT = "Direct"


class RoutingStrategy(StrEnum):
    """``ProductionVariant.RoutingConfig.RoutingStrategy``: how a request picks an instance."""

    LEAST_OUTSTANDING_REQUESTS = "LEAST_OUTSTANDING_REQUESTS"
    RANDOM = "RANDOM"
    PREFIX_AWARE = "PREFIX_AWARE"
    # Routes to an instance whose KV cache holds the prompt's start, else as
    # LEAST_OUTSTANDING_REQUESTS. moorage's instances report no KV cache, so it is always
    # that fallback here.
    KV_AWARE = "KV_AWARE"


@dataclass(frozen=True, kw_only=True)
class PrefixRouting:
    """``RoutingConfig.PrefixAwareRoutingConfig``: the first ``prefix_length`` bytes of a body
    (with its PrefixAwareId) choose the instance, unless it has ``concurrency_threshold``
    requests in flight."""

    prefix_length: int
    concurrency_threshold: int


class CaptureMode(StrEnum):
    """``DataCaptureConfig.CaptureOptions[].CaptureMode``."""

    INPUT = "Input"
    OUTPUT = "Output"
    INPUT_AND_OUTPUT = "InputAndOutput"


_SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)


@dataclass(frozen=True, kw_only=True)
class ContainerDefinition:
    """One container of a model: what to run and with which model data."""

    image: str | None = None
    model_data_url: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    mode: ContainerMode = ContainerMode.SINGLE_MODEL
    model_cache_setting: ModelCacheSetting = ModelCacheSetting.ENABLED
    container_hostname: str | None = None

    def __post_init__(self) -> None:
        # A read-only copy: the caller's dict can change afterwards without changing the record.
        object.__setattr__(self, "environment", MappingProxyType(dict(self.environment)))

    @property
    def is_multi_model(self) -> bool:
        return self.mode is ContainerMode.MULTI_MODEL


@dataclass(frozen=True, kw_only=True)
class Model:
    """A model: one primary container, or an inference pipeline of containers. Immutable."""

    name: str
    arn: str
    creation_time: datetime
    primary_container: ContainerDefinition | None = None
    containers: tuple[ContainerDefinition, ...] = ()
    inference_execution_mode: InferenceExecutionMode = InferenceExecutionMode.SERIAL
    execution_role_arn: str | None = None
    enable_network_isolation: bool = False

    def __post_init__(self) -> None:
        if (self.primary_container is None) == (not self.containers):
            raise ValidationError(
                f"Model '{self.name}' needs exactly one of PrimaryContainer or Containers."
            )

    @property
    def pipeline(self) -> tuple[ContainerDefinition, ...]:
        """The containers a request goes through: the primary one alone, or the pipeline."""
        if self.primary_container is not None:
            return (self.primary_container,)
        return self.containers

    @property
    def container_hostnames(self) -> tuple[str, ...]:
        """Each pipeline container's ContainerHostname, or the one assigned to it when none
        is given: ``container-1``, ``container-2``, …"""
        return tuple(
            c.container_hostname or f"container-{n}" for n, c in enumerate(self.pipeline, 1)
        )

    @property
    def is_direct_pipeline(self) -> bool:
        return bool(self.containers) and (
            self.inference_execution_mode is InferenceExecutionMode.DIRECT
        )


@dataclass(frozen=True, kw_only=True)
class ServerlessConfig:
    """A serverless variant's memory and concurrency limits."""

    memory_size_in_mb: int
    max_concurrency: int
    provisioned_concurrency: int | None = None

    def __post_init__(self) -> None:
        if self.memory_size_in_mb not in _SERVERLESS_MEMORY_SIZES:
            sizes = ", ".join(map(str, _SERVERLESS_MEMORY_SIZES))
            raise ValidationError(
                f"ServerlessConfig.MemorySizeInMB must be one of {sizes}, "
                f"not {self.memory_size_in_mb}."
            )
        if (
            self.provisioned_concurrency is not None
            and self.provisioned_concurrency > self.max_concurrency
        ):
            raise ValidationError(
                f"ServerlessConfig.ProvisionedConcurrency ({self.provisioned_concurrency}) must "
                f"not exceed MaxConcurrency ({self.max_concurrency})."
            )


@dataclass(frozen=True, kw_only=True)
class ProductionVariant:
    """One variant of an endpoint config: a model on instances, or serverless."""

    variant_name: str
    model_name: str
    instance_type: str | None = None
    initial_instance_count: int | None = None
    initial_variant_weight: float = 1.0
    serverless_config: ServerlessConfig | None = None
    model_data_download_timeout_in_seconds: int | None = None
    container_startup_health_check_timeout_in_seconds: int | None = None
    routing_strategy: RoutingStrategy | None = None
    prefix_routing: PrefixRouting | None = None

    def __post_init__(self) -> None:
        has_instances = self.instance_type is not None or self.initial_instance_count is not None
        where = f"Variant '{self.variant_name}'"
        is_prefix_aware = self.routing_strategy is RoutingStrategy.PREFIX_AWARE
        if is_prefix_aware and self.prefix_routing is None:
            raise ValidationError(
                f"{where} routes PREFIX_AWARE; give RoutingConfig.PrefixAwareRoutingConfig "
                "with PrefixLength and ConcurrencyThreshold."
            )
        if self.prefix_routing is not None and not is_prefix_aware:
            raise ValidationError(
                f"{where} gives PrefixAwareRoutingConfig, which applies only to RoutingStrategy "
                "PREFIX_AWARE."
            )
        if self.serverless_config is not None and has_instances:
            raise ValidationError(
                f"{where} sets both ServerlessConfig and InstanceType/InitialInstanceCount; "
                "choose one."
            )
        if self.serverless_config is None:
            if self.instance_type is None or self.initial_instance_count is None:
                raise ValidationError(
                    f"{where} needs InstanceType and InitialInstanceCount, or ServerlessConfig."
                )
            if self.initial_instance_count < 1:
                raise ValidationError(f"{where} needs InitialInstanceCount of 1 or more.")
            check_instance_count(self.initial_instance_count, f"{where} InitialInstanceCount")
        if self.initial_variant_weight < 0:
            raise ValidationError(f"{where} needs InitialVariantWeight of 0 or more.")

    @property
    def is_serverless(self) -> bool:
        return self.serverless_config is not None


@dataclass(frozen=True, kw_only=True)
class AsyncInferenceConfig:
    """Makes an endpoint asynchronous: where results and failures are written."""

    s3_output_path: str
    s3_failure_path: str | None = None
    max_concurrent_invocations_per_instance: int | None = None
    # SNS topic ARNs told of each outcome, and which of them get the answer's body.
    success_topic: str | None = None
    error_topic: str | None = None
    include_response_in: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class DataCaptureConfig:
    """Which requests and responses an endpoint records, and where."""

    destination_s3_uri: str
    initial_sampling_percentage: int
    capture_modes: frozenset[CaptureMode]
    enable_capture: bool = True
    csv_content_types: tuple[str, ...] = ()
    json_content_types: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class EndpointConfig:
    """What an endpoint runs: its variants and their settings. Immutable."""

    name: str
    arn: str
    creation_time: datetime
    production_variants: tuple[ProductionVariant, ...]
    async_inference_config: AsyncInferenceConfig | None = None
    data_capture_config: DataCaptureConfig | None = None

    def __post_init__(self) -> None:
        if not self.production_variants:
            raise ValidationError(f"Endpoint config '{self.name}' needs at least one variant.")
        seen: set[str] = set()
        for variant in self.production_variants:
            if variant.variant_name in seen:
                raise ValidationError(
                    f"Endpoint config '{self.name}' names variant '{variant.variant_name}' "
                    "twice; variant names must be unique."
                )
            seen.add(variant.variant_name)

    @property
    def is_async(self) -> bool:
        return self.async_inference_config is not None

    def variant(self, name: str) -> ProductionVariant | None:
        """The variant called ``name``, or None."""
        return next((v for v in self.production_variants if v.variant_name == name), None)


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """An endpoint: a name clients invoke, the config it serves, and where it stands."""

    name: str
    arn: str
    endpoint_config_name: str
    status: EndpointStatus
    creation_time: datetime
    last_modified_time: datetime
    failure_reason: str | None = None
