"""The hosting domain in SageMaker's words: resources as immutable records, statuses and their
transition tables, ARNs, traffic shares.

Pure: no I/O, no asyncio, no SQL, no wire keys. Everything above may import it; it imports only
``moorage.errors``.
"""

from moorage.domain.arns import Arn, ResourceKind, arn, parse_arn
from moorage.domain.resources import (
    AsyncInferenceConfig,
    CaptureMode,
    ContainerDefinition,
    ContainerMode,
    DataCaptureConfig,
    Endpoint,
    EndpointConfig,
    InferenceExecutionMode,
    Model,
    ModelCacheSetting,
    PrefixRouting,
    ProductionVariant,
    RoutingStrategy,
    ServerlessConfig,
    check_instance_count,
)
from moorage.domain.status import (
    ENDPOINT_TRANSITIONAL,
    TRANSFORM_JOB_FINAL,
    EndpointStatus,
    TransformJobStatus,
    VariantStatus,
    advance,
)
from moorage.domain.traffic import traffic_shares

__all__ = [
    "ENDPOINT_TRANSITIONAL",
    "TRANSFORM_JOB_FINAL",
    "Arn",
    "AsyncInferenceConfig",
    "CaptureMode",
    "ContainerDefinition",
    "ContainerMode",
    "DataCaptureConfig",
    "Endpoint",
    "EndpointConfig",
    "EndpointStatus",
    "InferenceExecutionMode",
    "Model",
    "ModelCacheSetting",
    "PrefixRouting",
    "ProductionVariant",
    "ResourceKind",
    "RoutingStrategy",
    "ServerlessConfig",
    "TransformJobStatus",
    "VariantStatus",
    "advance",
    "arn",
    "check_instance_count",
    "parse_arn",
    "traffic_shares",
]
