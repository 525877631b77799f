"""Server-side validation of control-plane input against botocore's sagemaker model."""

from typing import Any

import pytest

from moorage.api.validation import is_known_operation, validate_input
from moorage.errors import NotFound, ValidationError

ENDPOINT_NAME_PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
TAG_PATTERN = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"
ARN = "arn:aws:sagemaker:us-east-1:000000000000:endpoint/churn"


def message(operation: str, params: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        validate_input(operation, params)
    return str(caught.value)


def variant(**overrides: Any) -> dict[str, Any]:
    return {
        "VariantName": "AllTraffic",
        "ModelName": "churn",
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
        **overrides,
    }


def endpoint_config(*variants: dict[str, Any], **members: Any) -> dict[str, Any]:
    return {"EndpointConfigName": "churn-v1", "ProductionVariants": list(variants), **members}


def model(**container: Any) -> dict[str, Any]:
    return {"ModelName": "churn", "PrimaryContainer": {"Image": "python:3.11", **container}}


VALID_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("CreateModel", model(ModelDataUrl="s3://bucket/churn/model.tar.gz", Environment={"A_1": "x"})),
    (
        "CreateModel",
        {
            "ModelName": "pipeline",
            "Containers": [{"Image": "a", "ContainerHostname": "first"}, {"Image": "b"}],
            "InferenceExecutionConfig": {"Mode": "Direct"},
            "ExecutionRoleArn": "arn:aws:iam::000000000000:role/SageMakerRole",
        },
    ),
    ("DescribeModel", {"ModelName": "churn"}),
    ("ListModels", {}),
    ("ListModels", {"NameContains": "ch", "SortBy": "Name", "MaxResults": 100}),
    ("DeleteModel", {"ModelName": "churn"}),
    ("CreateEndpointConfig", endpoint_config(variant(InitialVariantWeight=0.5))),
    (
        "CreateEndpointConfig",
        endpoint_config(
            {
                "VariantName": "serverless",
                "ModelName": "churn",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            },
            AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://bucket/out"}},
        ),
    ),
    ("DescribeEndpointConfig", {"EndpointConfigName": "churn-v1"}),
    ("ListEndpointConfigs", {"SortOrder": "Ascending"}),
    ("DeleteEndpointConfig", {"EndpointConfigName": "churn-v1"}),
    ("CreateEndpoint", {"EndpointName": "churn", "EndpointConfigName": "churn-v1"}),
    ("DescribeEndpoint", {"EndpointName": "churn"}),
    ("ListEndpoints", {"StatusEquals": "InService", "CreationTimeAfter": 1700000000}),
    ("UpdateEndpoint", {"EndpointName": "churn", "EndpointConfigName": "churn-v2"}),
    (
        "UpdateEndpointWeightsAndCapacities",
        {
            "EndpointName": "churn",
            "DesiredWeightsAndCapacities": [{"VariantName": "AllTraffic", "DesiredWeight": 0.0}],
        },
    ),
    ("DeleteEndpoint", {"EndpointName": "churn"}),
    (
        "CreateTransformJob",
        {
            "TransformJobName": "score-1",
            "ModelName": "churn",
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in"}},
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": "s3://b/out", "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "BatchStrategy": "MultiRecord",
        },
    ),
    ("DescribeTransformJob", {"TransformJobName": "score-1"}),
    ("ListTransformJobs", {"StatusEquals": "Completed"}),
    ("StopTransformJob", {"TransformJobName": "score-1"}),
    ("AddTags", {"ResourceArn": ARN, "Tags": [{"Key": "team", "Value": "risk"}]}),
    ("ListTags", {"ResourceArn": ARN, "MaxResults": 50}),
    ("DeleteTags", {"ResourceArn": ARN, "TagKeys": ["team"]}),
]


@pytest.mark.parametrize(("operation", "params"), VALID_REQUESTS)
def test_validate_input_accepts_valid_requests(operation: str, params: dict[str, Any]) -> None:
    validate_input(operation, params)


def test_validate_input_reports_bad_pattern_in_aws_wording() -> None:
    got = message("CreateEndpoint", {"EndpointName": "a_b", "EndpointConfigName": "c"})
    assert got == (
        "1 validation error detected: Value 'a_b' at 'endpointName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {ENDPOINT_NAME_PATTERN}"
    )


def test_validate_input_reports_missing_required_member_as_null() -> None:
    got = message("CreateEndpoint", {"EndpointName": "churn"})
    assert got == (
        "1 validation error detected: Value null at 'endpointConfigName' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_validate_input_treats_json_null_as_absent() -> None:
    validate_input("ListEndpoints", {"NameContains": None})
    got = message("DescribeEndpoint", {"EndpointName": None})
    assert "Value null at 'endpointName'" in got


def test_validate_input_reports_string_too_long_and_pattern_separately() -> None:
    name = "a" * 63 + "-b"
    got = message("DescribeEndpoint", {"EndpointName": name})
    assert got == (
        f"2 validation errors detected: Value '{name}' at 'endpointName' failed to satisfy "
        "constraint: Member must have length less than or equal to 63; "
        f"Value '{name}' at 'endpointName' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {ENDPOINT_NAME_PATTERN}"
    )


def test_validate_input_reports_string_too_short() -> None:
    got = message("DeleteTags", {"ResourceArn": ARN, "TagKeys": ["team"] * 51})
    assert "at 'tagKeys' failed to satisfy constraint: Member must have length less than or " in got
    got = message("ListTags", {"ResourceArn": ARN, "NextToken": "x" * 8193})
    assert "Member must have length less than or equal to 8192" in got


def test_validate_input_reports_bad_enum_with_the_value_set() -> None:
    got = message("CreateEndpointConfig", endpoint_config(variant(InstanceType="ml.fake")))
    assert got.startswith(
        "1 validation error detected: Value 'ml.fake' at "
        "'productionVariants.1.member.instanceType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ml.t2.medium, ml.t2.large, "
    )
    assert got.endswith("]")
    got = message("ListEndpoints", {"StatusEquals": "Bogus"})
    assert got.endswith(
        "Member must satisfy enum value set: [OutOfService, Creating, Updating, SystemUpdating, "
        "RollingBack, InService, Deleting, Failed, UpdateRollbackFailed]"
    )


def test_validate_input_reports_integer_below_minimum() -> None:
    got = message("CreateEndpointConfig", endpoint_config(variant(InitialInstanceCount=0)))
    assert got == (
        "1 validation error detected: Value '0' at "
        "'productionVariants.1.member.initialInstanceCount' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


def test_validate_input_reports_integer_above_maximum() -> None:
    serverless = {"MemorySizeInMB": 7168, "MaxConcurrency": 201}
    got = message(
        "CreateEndpointConfig",
        endpoint_config({"VariantName": "v", "ServerlessConfig": serverless}),
    )
    assert got == (
        "2 validation errors detected: Value '7168' at "
        "'productionVariants.1.member.serverlessConfig.memorySizeInMB' failed to satisfy "
        "constraint: Member must have value less than or equal to 6144; Value '201' at "
        "'productionVariants.1.member.serverlessConfig.maxConcurrency' failed to satisfy "
        "constraint: Member must have value less than or equal to 200"
    )


def test_validate_input_reports_float_below_minimum() -> None:
    got = message("CreateEndpointConfig", endpoint_config(variant(InitialVariantWeight=-0.5)))
    assert (
        "Value '-0.5' at 'productionVariants.1.member.initialVariantWeight' failed to satisfy "
        "constraint: Member must have value greater than or equal to 0"
    ) in got


def test_validate_input_reports_list_too_long_and_too_short() -> None:
    got = message("CreateEndpointConfig", endpoint_config(*[variant()] * 11))
    assert (
        "at 'productionVariants' failed to satisfy constraint: Member must have length less " in got
    )
    assert got.startswith("1 validation error detected: Value '[{VariantName=AllTraffic, ")
    got = message("CreateEndpointConfig", endpoint_config())
    assert got == (
        "1 validation error detected: Value '[]' at 'productionVariants' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1"
    )


def test_validate_input_names_nested_members_with_one_based_list_index() -> None:
    got = message("CreateEndpointConfig", endpoint_config(variant(), {"ModelName": "churn"}))
    assert got == (
        "1 validation error detected: Value null at 'productionVariants.2.member.variantName' "
        "failed to satisfy constraint: Member must not be null"
    )


def test_validate_input_names_nested_structure_members() -> None:
    got = message("CreateModel", model(Image="x" * 256))
    assert (
        "at 'primaryContainer.image' failed to satisfy constraint: Member must have length" in got
    )
    got = message("CreateModel", {"ModelName": "m", "Containers": [{"Image": "a b"}]})
    assert "Value 'a b' at 'containers.1.member.image' failed to satisfy constraint: " in got


def test_validate_input_aggregates_several_errors() -> None:
    params = {
        "TransformJobName": "bad_name",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix"}}},
        "TransformOutput": {"S3OutputPath": "s3://b/out"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 0},
    }
    got = message("CreateTransformJob", params)
    assert got.startswith("4 validation errors detected: ")
    parts = got.removeprefix("4 validation errors detected: ").split("; ")
    assert parts == [
        "Value 'bad_name' at 'transformJobName' failed to satisfy constraint: Member must "
        f"satisfy regular expression pattern: {ENDPOINT_NAME_PATTERN}",
        "Value null at 'modelName' failed to satisfy constraint: Member must not be null",
        "Value null at 'transformInput.dataSource.s3DataSource.s3Uri' failed to satisfy "
        "constraint: Member must not be null",
        "Value '0' at 'transformResources.instanceCount' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
    ]


def test_validate_input_accepts_unicode_letters_numbers_and_spaces_in_tags() -> None:
    tags = [
        {"Key": "Grüße", "Value": "日本語 ٣ 値\u3000ok_.:/=+-@"},
        {"Key": "κλειδί", "Value": ""},
    ]
    validate_input("AddTags", {"ResourceArn": ARN, "Tags": tags})


def test_validate_input_rejects_tag_characters_outside_the_unicode_classes() -> None:
    got = message("AddTags", {"ResourceArn": ARN, "Tags": [{"Key": "team", "Value": "a!b"}]})
    assert got == (
        "1 validation error detected: Value 'a!b' at 'tags.1.member.value' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {TAG_PATTERN}"
    )


def test_validate_input_reports_list_of_strings_once_with_all_member_constraints() -> None:
    got = message("DeleteTags", {"ResourceArn": ARN, "TagKeys": ["ok", "", "a!"]})
    assert got == (
        "1 validation error detected: Value '[ok, , a!]' at 'tagKeys' failed to satisfy "
        "constraint: Member must satisfy constraint: [Member must have length less than or "
        "equal to 128, Member must have length greater than or equal to 1, Member must satisfy "
        f"regular expression pattern: {TAG_PATTERN}]"
    )


def test_validate_input_reports_map_keys_and_values() -> None:
    environment = {"1BAD": "x", "GOOD": "v" * 1025}
    got = message("CreateModel", model(Environment=environment))
    value = "{1BAD=x, GOOD=" + "v" * 1025 + "}"
    assert got == (
        f"2 validation errors detected: Value '{value}' at 'primaryContainer.environment' "
        "failed to satisfy constraint: Map keys must satisfy constraint: [Member must have "
        "length less than or equal to 1024, Member must have length greater than or equal to 0, "
        "Member must satisfy regular expression pattern: ^[a-zA-Z_][a-zA-Z0-9_]*]; "
        f"Value '{value}' at 'primaryContainer.environment' failed to satisfy constraint: "
        "Map value must satisfy constraint: [Member must have length less than or equal to "
        "1024, Member must have length greater than or equal to 0, Member must satisfy regular "
        r"expression pattern: ^[\S\s]*]"
    )


def test_validate_input_reports_map_with_too_many_entries() -> None:
    environment = {f"K{i}": "v" for i in range(101)}
    got = message("CreateModel", model(Environment=environment))
    assert "Member must have length less than or equal to 100" in got


@pytest.mark.parametrize(
    ("params", "constraint"),
    [
        ({"EndpointName": 5}, "Member must be of type string"),
        ({"EndpointName": ["churn"]}, "Member must be of type string"),
        ({"MaxResults": "10"}, "Member must be of type integer"),
        ({"MaxResults": True}, "Member must be of type integer"),
        ({"MaxResults": 1.5}, "Member must be of type integer"),
        ({"CreationTimeAfter": "yesterday"}, "Member must be a timestamp"),
        ({"CreationTimeAfter": False}, "Member must be a timestamp"),
    ],
)
def test_validate_input_reports_wrong_json_types(params: dict[str, Any], constraint: str) -> None:
    if "EndpointName" in params:
        got = message("DescribeEndpoint", params)
    else:
        got = message("ListEndpoints", params)
    assert constraint in got


def test_validate_input_reports_wrong_container_types() -> None:
    got = message("CreateEndpointConfig", endpoint_config(ProductionVariants="v"))
    assert (
        "at 'productionVariants' failed to satisfy constraint: Member must be of type list" in got
    )
    got = message("CreateModel", {"ModelName": "m", "PrimaryContainer": "img"})
    assert "Member must be of type structure" in got
    got = message("CreateModel", model(Environment=["A=1"]))
    assert "Member must be of type map" in got
    got = message("CreateModel", {"ModelName": "m", "EnableNetworkIsolation": "true"})
    assert "Member must be of type boolean" in got


@pytest.mark.parametrize("when", [1700000000, 1700000000.5, "2024-01-01T00:00:00Z", "2024-01-01"])
def test_validate_input_accepts_epoch_and_iso_timestamps(when: object) -> None:
    validate_input("ListEndpoints", {"CreationTimeBefore": when})


def test_validate_input_ignores_unknown_members() -> None:
    validate_input("DescribeEndpoint", {"EndpointName": "churn", "FutureMember": {"x": 1}})


@pytest.mark.parametrize(
    "url", ["file:///models/churn.tar.gz", "/models/churn.tar.gz", "s3://b/churn.tar.gz"]
)
def test_validate_input_accepts_local_and_s3_model_data(url: str) -> None:
    validate_input("CreateModel", model(ModelDataUrl=url))


def test_validate_input_rejects_other_model_data_schemes() -> None:
    got = message("CreateModel", model(ModelDataUrl="ftp://host/m.tar.gz"))
    assert "at 'primaryContainer.modelDataUrl' failed to satisfy constraint" in got


def test_validate_input_does_not_echo_sensitive_values() -> None:
    oidc = {
        key: "https://idp.example/x"
        for key in ("Issuer", "AuthorizationEndpoint", "TokenEndpoint", "UserInfoEndpoint")
    }
    oidc |= {"ClientId": "id", "ClientSecret": "s\u00e9cret", "LogoutEndpoint": "https://x/y"}
    oidc["JwksUri"] = "https://idp.example/jwks"
    got = message("CreateWorkforce", {"WorkforceName": "w", "OidcConfig": oidc})
    assert "s\u00e9cret" not in got
    assert "Value at 'oidcConfig.clientSecret' failed to satisfy constraint: Member must " in got


def test_validate_input_requires_an_object_body() -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        validate_input("ListModels", [])  # type: ignore[arg-type]  # a JSON array body


def test_is_known_operation_knows_model_operations_only() -> None:
    assert is_known_operation("CreateEndpoint")
    assert is_known_operation("ListTags")
    assert not is_known_operation("SageMaker.CreateEndpoint")
    assert not is_known_operation("InvokeEndpoint")  # a runtime operation
    assert not is_known_operation("createEndpoint")


def test_validate_input_refuses_unknown_operation() -> None:
    with pytest.raises(NotFound, match="Unknown operation 'CreateWidget'"):
        validate_input("CreateWidget", {})
