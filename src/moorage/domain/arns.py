"""SageMaker ARNs: ``arn:aws:sagemaker:<region>:<account>:<kind>/<name>`` (spec/API.md §2).

SageMaker lower-cases the name inside an ARN, so names are unique case-insensitively and an ARN
alone gives back the lower-cased name, not the name as created.
"""

import re
from enum import StrEnum
from typing import Final, NamedTuple


class ResourceKind(StrEnum):
    """The resource-type part of an ARN."""

    MODEL = "model"
    ENDPOINT_CONFIG = "endpoint-config"
    ENDPOINT = "endpoint"
    TRANSFORM_JOB = "transform-job"
    TRAINING_JOB = "training-job"


class Arn(NamedTuple):
    """A parsed SageMaker ARN of one of moorage's resources."""

    kind: ResourceKind
    name: str
    region: str
    account: str


_ACCOUNT: Final = re.compile(r"[0-9]{12}")
_REGION: Final = re.compile(r"[a-z0-9-]+")
_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"(?P<kind>[a-z-]+)/(?P<name>[a-zA-Z0-9](?:-*[a-zA-Z0-9])*)"
)


def arn(kind: ResourceKind, name: str, *, region: str, account: str) -> str:
    """The ARN SageMaker gives resource ``name`` of ``kind``; the name is lower-cased."""
    if not _ACCOUNT.fullmatch(account):
        raise ValueError(f"account must be 12 digits, not {account!r}")
    if not _REGION.fullmatch(region):
        raise ValueError(f"region must be lower-case letters, digits and '-', not {region!r}")
    return f"arn:aws:sagemaker:{region}:{account}:{kind}/{name.lower()}"


def parse_arn(value: str) -> Arn | None:
    """The parts of a moorage resource ARN (name lower-cased), or None if it is not one."""
    match = _ARN.fullmatch(value)
    if match is None:
        return None
    try:
        kind = ResourceKind(match["kind"])
    except ValueError:
        return None
    return Arn(kind, match["name"].lower(), match["region"], match["account"])
