"""Stored documents → domain records.

The store keeps each resource's create request as received (SageMaker's Describe* operations
echo it back), so this is the one place below ``api/`` that reads wire keys: it turns a
document into the typed record the reconciler acts on.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from moorage.domain import (
    AsyncInferenceConfig,
    CaptureMode,
    ContainerDefinition,
    ContainerMode,
    DataCaptureConfig,
    EndpointConfig,
    InferenceExecutionMode,
    Model,
    ModelCacheSetting,
    PrefixRouting,
    ProductionVariant,
    RoutingStrategy,
    ServerlessConfig,
)
from moorage.errors import ValidationError
from moorage.store import DocumentRecord

Document = Mapping[str, Any]


def container(document: Document) -> ContainerDefinition:
    source = document.get("ModelDataSource", {}).get("S3DataSource", {})
    return ContainerDefinition(
        image=document.get("Image"),
        model_data_url=document.get("ModelDataUrl") or source.get("S3Uri"),
        environment=dict(document.get("Environment", {})),
        mode=ContainerMode(document.get("Mode", ContainerMode.SINGLE_MODEL)),
        model_cache_setting=ModelCacheSetting(
            document.get("MultiModelConfig", {}).get("ModelCacheSetting", "Enabled")
        ),
        container_hostname=document.get("ContainerHostname"),
    )


def model(name: str, arn: str, created: datetime, document: Document) -> Model:
    primary = document.get("PrimaryContainer")
    return Model(
        name=name,
        arn=arn,
        creation_time=created,
        primary_container=container(primary) if primary is not None else None,
        containers=tuple(container(c) for c in document.get("Containers", ())),
        inference_execution_mode=InferenceExecutionMode(
            document.get("InferenceExecutionConfig", {}).get("Mode", "Serial")
        ),
        execution_role_arn=document.get("ExecutionRoleArn"),
        enable_network_isolation=bool(document.get("EnableNetworkIsolation", False)),
    )


def variant(document: Document) -> ProductionVariant:
    serverless = document.get("ServerlessConfig")
    routing = document.get("RoutingConfig", {})
    strategy = routing.get("RoutingStrategy")
    return ProductionVariant(
        variant_name=document["VariantName"],
        model_name=document["ModelName"],
        instance_type=document.get("InstanceType"),
        initial_instance_count=document.get("InitialInstanceCount"),
        initial_variant_weight=float(document.get("InitialVariantWeight", 1.0)),
        serverless_config=serverless_config(serverless) if serverless is not None else None,
        model_data_download_timeout_in_seconds=document.get("ModelDataDownloadTimeoutInSeconds"),
        container_startup_health_check_timeout_in_seconds=document.get(
            "ContainerStartupHealthCheckTimeoutInSeconds"
        ),
        routing_strategy=RoutingStrategy(strategy) if strategy else None,
        prefix_routing=prefix_routing(routing["PrefixAwareRoutingConfig"])
        if "PrefixAwareRoutingConfig" in routing
        else None,
    )


def prefix_routing(document: Document) -> PrefixRouting:
    length, threshold = document.get("PrefixLength"), document.get("ConcurrencyThreshold")
    if length is None or threshold is None:
        raise ValidationError(
            "PrefixAwareRoutingConfig needs both PrefixLength and ConcurrencyThreshold."
        )
    return PrefixRouting(prefix_length=length, concurrency_threshold=threshold)


def serverless_config(document: Document) -> ServerlessConfig:
    """A ``ServerlessConfig`` (or an endpoint's ``DesiredServerlessConfig``)."""
    return ServerlessConfig(
        memory_size_in_mb=document["MemorySizeInMB"],
        max_concurrency=document["MaxConcurrency"],
        provisioned_concurrency=document.get("ProvisionedConcurrency"),
    )


def serverless_document(config: ServerlessConfig) -> dict[str, int]:
    """What DescribeEndpoint shows of a serverless config."""
    document = {
        "MemorySizeInMB": config.memory_size_in_mb,
        "MaxConcurrency": config.max_concurrency,
    }
    if config.provisioned_concurrency is not None:
        document["ProvisionedConcurrency"] = config.provisioned_concurrency
    return document


def endpoint_config(name: str, arn: str, created: datetime, document: Document) -> EndpointConfig:
    return EndpointConfig(
        name=name,
        arn=arn,
        creation_time=created,
        production_variants=tuple(variant(v) for v in document.get("ProductionVariants", ())),
        data_capture_config=data_capture_config(capture)
        if (capture := document.get("DataCaptureConfig"))
        else None,
        async_inference_config=async_inference_config(asynchronous)
        if (asynchronous := document.get("AsyncInferenceConfig"))
        else None,
    )


def async_inference_config(document: Document) -> AsyncInferenceConfig:
    output = document.get("OutputConfig", {})
    notifications = output.get("NotificationConfig", {})
    path = output.get("S3OutputPath")
    if not path:
        raise ValidationError("AsyncInferenceConfig.OutputConfig needs S3OutputPath.")
    return AsyncInferenceConfig(
        s3_output_path=path,
        s3_failure_path=output.get("S3FailurePath"),
        max_concurrent_invocations_per_instance=document.get("ClientConfig", {}).get(
            "MaxConcurrentInvocationsPerInstance"
        ),
        success_topic=notifications.get("SuccessTopic"),
        error_topic=notifications.get("ErrorTopic"),
        include_response_in=frozenset(notifications.get("IncludeInferenceResponseIn", ())),
    )


def data_capture_config(document: Document) -> DataCaptureConfig:
    """A ``DataCaptureConfig`` (an endpoint config's, or the one an endpoint retained)."""
    header = document.get("CaptureContentTypeHeader", {})
    return DataCaptureConfig(
        destination_s3_uri=document["DestinationS3Uri"],
        initial_sampling_percentage=document["InitialSamplingPercentage"],
        capture_modes=frozenset(CaptureMode(o["CaptureMode"]) for o in document["CaptureOptions"]),
        enable_capture=document.get("EnableCapture", True),
        csv_content_types=tuple(header.get("CsvContentTypes", ())),
        json_content_types=tuple(header.get("JsonContentTypes", ())),
    )


def snapshot(config: DocumentRecord, models: Mapping[str, DocumentRecord]) -> dict[str, Any]:
    """An endpoint config and its models as of now, kept in the endpoint's desired state."""

    def entry(record: DocumentRecord) -> dict[str, Any]:
        return {
            "Name": record.name,
            "Arn": record.arn,
            "CreationTime": record.creation_time.isoformat(),
            "Document": dict(record.document),
        }

    return {
        "EndpointConfig": entry(config),
        "Models": {name: entry(record) for name, record in models.items()},
    }


def deployed_config(resolved: Document | None) -> Document:
    """The endpoint config document in an endpoint's snapshot (``Resolved``); empty if none."""
    document: Document = (resolved or {}).get("EndpointConfig", {}).get("Document", {})
    return document


def unsnapshot(resolved: Document) -> tuple[DocumentRecord, dict[str, DocumentRecord]]:
    def record(entry: Document) -> DocumentRecord:
        return DocumentRecord(
            name=entry["Name"],
            arn=entry["Arn"],
            creation_time=datetime.fromisoformat(entry["CreationTime"]),
            document=entry["Document"],
        )

    models = {name: record(entry) for name, entry in resolved.get("Models", {}).items()}
    return record(resolved["EndpointConfig"]), models
