"""Statuses carry SageMaker's strings; transition tables allow exactly the documented moves."""

from enum import StrEnum

import botocore.session
import pytest

from moorage.domain import (
    ENDPOINT_TRANSITIONAL,
    EndpointStatus,
    TransformJobStatus,
    VariantStatus,
    advance,
)
from moorage.errors import Conflict, InvalidTransition

E = EndpointStatus
T = TransformJobStatus


@pytest.mark.parametrize(
    ("enum", "shape"),
    [
        (EndpointStatus, "EndpointStatus"),
        (TransformJobStatus, "TransformJobStatus"),
        (VariantStatus, "VariantStatus"),
    ],
)
def test_status_values_are_sagemakers(enum: type[StrEnum], shape: str) -> None:
    service = botocore.session.get_session().get_service_model("sagemaker")
    assert [member.value for member in enum] == service.shape_for(shape).enum


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (E.CREATING, E.IN_SERVICE),
        (E.CREATING, E.FAILED),
        (E.IN_SERVICE, E.UPDATING),
        (E.UPDATING, E.IN_SERVICE),
        (E.UPDATING, E.ROLLING_BACK),
        (E.ROLLING_BACK, E.IN_SERVICE),
        (E.ROLLING_BACK, E.UPDATE_ROLLBACK_FAILED),
        (E.UPDATE_ROLLBACK_FAILED, E.UPDATING),
        (E.FAILED, E.DELETING),
    ],
)
def test_advance_allows_documented_endpoint_transitions(current: E, new: E) -> None:
    assert advance(current, new) is new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (T.IN_PROGRESS, T.COMPLETED),
        (T.IN_PROGRESS, T.FAILED),
        (T.IN_PROGRESS, T.STOPPING),
        (T.STOPPING, T.STOPPED),
        (T.STOPPING, T.FAILED),
    ],
)
def test_advance_allows_documented_transform_job_transitions(current: T, new: T) -> None:
    assert advance(current, new) is new


@pytest.mark.parametrize("current", [s for s in EndpointStatus if s is not E.DELETING])
def test_advance_allows_delete_from_any_endpoint_status_but_deleting(current: E) -> None:
    assert advance(current, E.DELETING) is E.DELETING


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (E.CREATING, E.UPDATING),
        (E.FAILED, E.IN_SERVICE),
        (E.FAILED, E.UPDATING),
        (E.IN_SERVICE, E.CREATING),
        (E.IN_SERVICE, E.IN_SERVICE),
        (E.DELETING, E.IN_SERVICE),
        (E.DELETING, E.DELETING),
    ],
)
def test_advance_refuses_other_endpoint_transitions(current: E, new: E) -> None:
    with pytest.raises(
        InvalidTransition, match=f"EndpointStatus cannot go from {current} to {new}"
    ):
        advance(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (T.IN_PROGRESS, T.STOPPED),
        (T.IN_PROGRESS, T.IN_PROGRESS),
        (T.STOPPING, T.COMPLETED),
        (T.STOPPED, T.IN_PROGRESS),
    ],
)
def test_advance_refuses_other_transform_job_transitions(current: T, new: T) -> None:
    with pytest.raises(InvalidTransition, match=f"from {current} to {new}"):
        advance(current, new)


def test_refused_transition_is_a_conflict() -> None:
    with pytest.raises(Conflict):
        advance(E.FAILED, E.IN_SERVICE)


@pytest.mark.parametrize("final", [T.COMPLETED, T.FAILED, T.STOPPED])
def test_finished_transform_jobs_never_change(final: T) -> None:
    for new in TransformJobStatus:
        with pytest.raises(InvalidTransition):
            advance(final, new)


def test_transitional_endpoint_statuses() -> None:
    assert E.CREATING in ENDPOINT_TRANSITIONAL
    assert E.IN_SERVICE not in ENDPOINT_TRANSITIONAL
    assert E.FAILED not in ENDPOINT_TRANSITIONAL
