"""Every error class is mapped by every adapter, to SageMaker's codes."""

import json

import pytest

from moorage import errors
from moorage.api.app import ServerApp
from moorage.api.errors import CONTROL_PLANE_ERRORS, RUNTIME_ERRORS, lookup
from moorage.store import AlreadyExists


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_subclasses(sub)
    return found


@pytest.mark.parametrize(
    "table", [CONTROL_PLANE_ERRORS, RUNTIME_ERRORS], ids=["control", "runtime"]
)
def test_every_error_class_of_the_tree_is_mapped(table):
    tree = {c for c in all_subclasses(errors.MoorageError) if c.__module__ == "moorage.errors"}
    assert tree <= set(table)


def test_not_found_is_a_validation_exception_on_the_control_plane():
    # SageMaker answers not-found with ValidationException; boto3's waiters rely on it.
    assert lookup(CONTROL_PLANE_ERRORS, errors.NotFound("x")) == (400, "ValidationException")
    assert lookup(CONTROL_PLANE_ERRORS, AlreadyExists("model", "arn")) == (
        400,
        "ValidationException",
    )


def test_model_errors_are_424_on_the_runtime():
    assert lookup(RUNTIME_ERRORS, errors.ModelError("boom")) == (424, "ModelError")
    assert lookup(RUNTIME_ERRORS, errors.InstanceUnavailable("x")) == (503, "ServiceUnavailable")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "ValidationError"),
        (408, "RequestTimeout"),
        (413, "ValidationError"),
        (500, "InternalFailure"),
    ],
)
def test_the_http_servers_own_answers_have_sagemakers_shape(status, code):
    answer = ServerApp.http_error(status, "said")
    assert answer.status == status
    assert json.loads(answer.body) == {"__type": code, "Message": "said"}
    assert ("x-amzn-ErrorType", code) in answer.headers
