"""SageMaker ARNs: format, lower-cased names, parsing back."""

import re

import pytest

from moorage.domain import Arn, ResourceKind, arn, parse_arn

# AddTags/ListTags/DeleteTags.ResourceArn (spec/API.md §2).
TAGGABLE = re.compile(r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]*:[0-9]{12}:.+")


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (ResourceKind.MODEL, "model"),
        (ResourceKind.ENDPOINT_CONFIG, "endpoint-config"),
        (ResourceKind.ENDPOINT, "endpoint"),
        (ResourceKind.TRANSFORM_JOB, "transform-job"),
        (ResourceKind.TRAINING_JOB, "training-job"),
    ],
)
def test_arn_has_sagemaker_format(kind: ResourceKind, text: str) -> None:
    got = arn(kind, "churn-v1", region="eu-west-1", account="000000000000")
    assert got == f"arn:aws:sagemaker:eu-west-1:000000000000:{text}/churn-v1"
    assert TAGGABLE.fullmatch(got)


def test_arn_lower_cases_the_name() -> None:
    got = arn(ResourceKind.ENDPOINT, "DEMO-x", region="us-east-1", account="123456789012")
    assert got == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/demo-x"


@pytest.mark.parametrize(
    ("region", "account"),
    [("us-east-1", "0"), ("us-east-1", "00000000000a"), ("US East", "0" * 12)],
)
def test_arn_refuses_bad_account_or_region(region: str, account: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        arn(ResourceKind.MODEL, "m", region=region, account=account)


def test_parse_arn_gives_back_the_parts() -> None:
    value = arn(ResourceKind.ENDPOINT_CONFIG, "Churn-V1", region="us-east-1", account="0" * 12)
    assert parse_arn(value) == Arn(ResourceKind.ENDPOINT_CONFIG, "churn-v1", "us-east-1", "0" * 12)


def test_parse_arn_lower_cases_a_hand_written_name() -> None:
    parsed = parse_arn("arn:aws:sagemaker:us-east-1:000000000000:model/Churn")
    assert parsed is not None
    assert parsed.name == "churn"


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:sagemaker:us-east-1:000000000000:notebook-instance/nb",
        "arn:aws:s3:us-east-1:000000000000:model/m",
        "arn:aws:sagemaker:us-east-1:0000:model/m",
        "arn:aws:sagemaker:us-east-1:000000000000:model/",
        "arn:aws:sagemaker:us-east-1:000000000000:model/a_b",
        "churn",
    ],
)
def test_parse_arn_refuses_other_strings(value: str) -> None:
    assert parse_arn(value) is None
