"""Errors on the wire, in SageMaker's shapes (spec/API.md §1 and §6.4).

Each adapter owns one table from ``moorage.errors`` classes to (HTTP status, SageMaker code):
the same ``NotFound`` is a ``ValidationException`` on the control plane and a
``ValidationError`` on the runtime, which is why the mapping lives here and not in the classes.
"""

import itertools
import json
import uuid
from typing import Any, Final

from moorage import errors
from moorage.http import Response

CONTROL_JSON: Final = "application/x-amz-json-1.1"

# Control plane (JSON 1.1): SageMaker answers not-found, already-exists and wrong-state alike
# with ValidationException, which is what the SDKs and boto3's waiters match on.
CONTROL_PLANE_ERRORS: Final[dict[type[errors.MoorageError], tuple[int, str]]] = {
    errors.ValidationError: (400, "ValidationException"),
    errors.ArtifactError: (400, "ValidationException"),
    errors.NotFound: (400, "ValidationException"),
    errors.Conflict: (400, "ValidationException"),
    errors.InvalidTransition: (400, "ValidationException"),
    # SageMaker's answer to a request over a quota (spec/API.md §1, LIMITS.md §9).
    errors.LimitExceeded: (400, "ResourceLimitExceeded"),
    errors.InstanceUnavailable: (503, "ServiceUnavailable"),
    errors.LoadError: (400, "ValidationException"),
    errors.ModelError: (400, "ValidationException"),
}

# Runtime (rest-json).
RUNTIME_ERRORS: Final[dict[type[errors.MoorageError], tuple[int, str]]] = {
    errors.ValidationError: (400, "ValidationError"),
    errors.ArtifactError: (400, "ValidationError"),
    errors.NotFound: (400, "ValidationError"),
    errors.Conflict: (400, "ValidationError"),
    errors.InvalidTransition: (400, "ValidationError"),
    errors.LimitExceeded: (400, "ValidationError"),
    errors.InstanceUnavailable: (503, "ServiceUnavailable"),
    errors.LoadError: (424, "ModelError"),
    errors.ModelError: (424, "ModelError"),
}


# Request ids: unique per server run without a uuid4 per request on the invocation path.
_RUN = uuid.uuid4().hex[:12]
_sequence = itertools.count(1)


def request_id() -> str:
    """A value for ``x-amzn-RequestId``, which botocore hands back as ResponseMetadata."""
    return f"{_RUN}-{next(_sequence):012x}"


def lookup(
    table: dict[type[errors.MoorageError], tuple[int, str]], exc: errors.MoorageError
) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return 500, "InternalFailure"


def control_error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"__type": code, "message": message}).encode()
    return Response(
        status,
        body,
        [
            ("Content-Type", CONTROL_JSON),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", request_id()),
        ],
    )


def runtime_error(status: int, code: str, message: str, **members: Any) -> Response:
    body = json.dumps({"__type": code, "Message": message, **members}).encode()
    return Response(
        status,
        body,
        [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", request_id()),
        ],
    )
