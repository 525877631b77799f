"""Resource records: immutable, with the cross-member rules botocore's model cannot express."""

import dataclasses
from datetime import UTC, datetime

import pytest

from moorage.domain import (
    AsyncInferenceConfig,
    ContainerDefinition,
    ContainerMode,
    Endpoint,
    EndpointConfig,
    EndpointStatus,
    Model,
    ModelCacheSetting,
    ProductionVariant,
    ServerlessConfig,
)
from moorage.errors import ValidationError

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def instance_variant(name: str = "AllTraffic", /, **overrides: object) -> ProductionVariant:
    fields: dict[str, object] = {
        "variant_name": name,
        "model_name": "churn",
        "instance_type": "ml.m5.large",
        "initial_instance_count": 1,
    }
    return ProductionVariant(**(fields | overrides))  # type: ignore[arg-type]  # test overrides


def test_container_defaults_are_sagemakers() -> None:
    container = ContainerDefinition(image="python:3.11")
    assert container.mode is ContainerMode.SINGLE_MODEL
    assert container.model_cache_setting is ModelCacheSetting.ENABLED
    assert not container.is_multi_model
    assert ContainerDefinition(mode=ContainerMode.MULTI_MODEL).is_multi_model


def test_container_environment_is_a_read_only_copy() -> None:
    environment = {"A": "1"}
    container = ContainerDefinition(environment=environment)
    environment["A"] = "2"
    assert container.environment == {"A": "1"}
    with pytest.raises(TypeError):
        container.environment["A"] = "3"  # type: ignore[index]  # checking it is read-only


def test_records_are_frozen() -> None:
    container = ContainerDefinition(image="i")
    with pytest.raises(dataclasses.FrozenInstanceError):
        container.image = "j"  # type: ignore[misc]  # checking it is frozen


def test_model_with_primary_container_runs_it_alone() -> None:
    primary = ContainerDefinition(image="i", model_data_url="s3://b/m.tar.gz")
    model = Model(name="churn", arn="arn", creation_time=NOW, primary_container=primary)
    assert model.pipeline == (primary,)


def test_model_pipeline_is_its_containers() -> None:
    containers = (ContainerDefinition(image="a"), ContainerDefinition(image="b"))
    model = Model(name="p", arn="arn", creation_time=NOW, containers=containers)
    assert model.pipeline == containers


@pytest.mark.parametrize("both", [True, False])
def test_model_needs_exactly_one_of_primary_container_or_containers(both: bool) -> None:
    container = ContainerDefinition(image="i")
    with pytest.raises(ValidationError, match="exactly one of PrimaryContainer or Containers"):
        Model(
            name="m",
            arn="arn",
            creation_time=NOW,
            primary_container=container if both else None,
            containers=(container,) if both else (),
        )


def test_instance_variant_defaults_to_weight_one() -> None:
    variant = instance_variant()
    assert variant.initial_variant_weight == 1.0
    assert not variant.is_serverless


def test_serverless_variant() -> None:
    config = ServerlessConfig(memory_size_in_mb=2048, max_concurrency=5, provisioned_concurrency=5)
    variant = ProductionVariant(variant_name="v", model_name="m", serverless_config=config)
    assert variant.is_serverless


def test_variant_cannot_be_both_serverless_and_instance_based() -> None:
    config = ServerlessConfig(memory_size_in_mb=1024, max_concurrency=1)
    with pytest.raises(ValidationError, match="both ServerlessConfig and InstanceType"):
        instance_variant(serverless_config=config)


@pytest.mark.parametrize("missing", [{"instance_type": None}, {"initial_instance_count": None}])
def test_instance_variant_needs_type_and_count(missing: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="needs InstanceType and InitialInstanceCount"):
        instance_variant(**missing)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"initial_instance_count": 0}, "InitialInstanceCount of 1 or more"),
        ({"initial_variant_weight": -1.0}, "InitialVariantWeight of 0 or more"),
    ],
)
def test_variant_refuses_out_of_range_numbers(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        instance_variant(**overrides)


@pytest.mark.parametrize("memory", [1000, 1536, 7168])
def test_serverless_memory_comes_in_steps_of_1024(memory: int) -> None:
    with pytest.raises(ValidationError, match="MemorySizeInMB must be one of 1024, 2048"):
        ServerlessConfig(memory_size_in_mb=memory, max_concurrency=1)


def test_serverless_provisioned_concurrency_cannot_exceed_max() -> None:
    with pytest.raises(ValidationError, match="must not exceed MaxConcurrency"):
        ServerlessConfig(memory_size_in_mb=1024, max_concurrency=2, provisioned_concurrency=3)


def test_endpoint_config_finds_variants_by_name() -> None:
    blue, green = instance_variant("blue"), instance_variant("green")
    config = EndpointConfig(
        name="c", arn="arn", creation_time=NOW, production_variants=(blue, green)
    )
    assert config.variant("green") is green
    assert config.variant("red") is None
    assert not config.is_async


def test_endpoint_config_with_async_inference_is_async() -> None:
    config = EndpointConfig(
        name="c",
        arn="arn",
        creation_time=NOW,
        production_variants=(instance_variant(),),
        async_inference_config=AsyncInferenceConfig(s3_output_path="s3://b/out"),
    )
    assert config.is_async


def test_endpoint_config_refuses_duplicate_variant_names() -> None:
    with pytest.raises(ValidationError, match="names variant 'v' twice"):
        EndpointConfig(
            name="c",
            arn="arn",
            creation_time=NOW,
            production_variants=(instance_variant("v"), instance_variant("v")),
        )


def test_endpoint_config_needs_a_variant() -> None:
    with pytest.raises(ValidationError, match="at least one variant"):
        EndpointConfig(name="c", arn="arn", creation_time=NOW, production_variants=())


def test_endpoint_record() -> None:
    endpoint = Endpoint(
        name="churn",
        arn="arn",
        endpoint_config_name="c",
        status=EndpointStatus.CREATING,
        creation_time=NOW,
        last_modified_time=NOW,
    )
    assert endpoint.failure_reason is None
    failed = dataclasses.replace(endpoint, status=EndpointStatus.FAILED, failure_reason="ping")
    assert failed.status == "Failed"
