"""Statuses of endpoints, variants and transform jobs, with SageMaker's strings, and their
transition tables.

The tables are data: a transition not listed is refused by ``advance``. Which *operation* may
start a transition (say, UpdateEndpoint only from InService) is a use-case rule in ``control``;
these tables say only which status may follow which.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Final, TypeVar

from moorage.errors import InvalidTransition


class EndpointStatus(StrEnum):
    """``DescribeEndpoint.EndpointStatus``; moorage never sets OutOfService or SystemUpdating."""

    OUT_OF_SERVICE = "OutOfService"
    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"


class TransformJobStatus(StrEnum):
    """``DescribeTransformJob.TransformJobStatus``."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class VariantStatus(StrEnum):
    """``ProductionVariantSummary.VariantStatus[].Status``: a step in progress on one variant.

    A report, not a state machine: a variant at rest has no status, so there is no table.
    """

    CREATING = "Creating"
    UPDATING = "Updating"
    DELETING = "Deleting"
    ACTIVATING_TRAFFIC = "ActivatingTraffic"
    BAKING = "Baking"


_E = EndpointStatus
_ENDPOINT_NEXT: Final[Mapping[_E, frozenset[_E]]] = {
    _E.CREATING: frozenset({_E.IN_SERVICE, _E.FAILED, _E.DELETING}),
    # Failed: a fleet that cannot be brought back after a server restart (moorage).
    _E.IN_SERVICE: frozenset(
        {_E.UPDATING, _E.SYSTEM_UPDATING, _E.OUT_OF_SERVICE, _E.DELETING, _E.FAILED}
    ),
    # A failed update goes back to InService on the old config, with a FailureReason.
    _E.UPDATING: frozenset({_E.IN_SERVICE, _E.ROLLING_BACK, _E.FAILED, _E.DELETING}),
    _E.SYSTEM_UPDATING: frozenset({_E.IN_SERVICE, _E.DELETING}),
    _E.ROLLING_BACK: frozenset({_E.IN_SERVICE, _E.UPDATE_ROLLBACK_FAILED, _E.DELETING}),
    _E.OUT_OF_SERVICE: frozenset({_E.IN_SERVICE, _E.DELETING}),
    # SageMaker's remedy for a failed rollback is another UpdateEndpoint.
    _E.UPDATE_ROLLBACK_FAILED: frozenset({_E.UPDATING, _E.DELETING}),
    # DeleteEndpoint is the only operation allowed on a Failed endpoint.
    _E.FAILED: frozenset({_E.DELETING}),
    _E.DELETING: frozenset(),  # then the endpoint is gone
}

_T = TransformJobStatus
_TRANSFORM_JOB_NEXT: Final[Mapping[_T, frozenset[_T]]] = {
    _T.IN_PROGRESS: frozenset({_T.COMPLETED, _T.FAILED, _T.STOPPING}),
    # A stopped job leaves no output, even if its last batch finished meanwhile.
    _T.STOPPING: frozenset({_T.STOPPED, _T.FAILED}),
    _T.COMPLETED: frozenset(),
    _T.FAILED: frozenset(),
    _T.STOPPED: frozenset(),
}

#: Endpoint statuses with work under way (SageMaker: "Cannot update in-progress endpoint").
ENDPOINT_TRANSITIONAL: Final = frozenset(
    {_E.CREATING, _E.UPDATING, _E.SYSTEM_UPDATING, _E.ROLLING_BACK, _E.DELETING}
)
#: Transform job statuses after which nothing changes.
TRANSFORM_JOB_FINAL: Final = frozenset({_T.COMPLETED, _T.FAILED, _T.STOPPED})

_S = TypeVar("_S", EndpointStatus, TransformJobStatus)


def advance(current: _S, new: _S) -> _S:
    """Return ``new`` if the table allows ``current -> new``; raise ``InvalidTransition`` if not.

    Staying in the same status is not a transition and is refused too.
    """
    if new not in _next(current):
        raise InvalidTransition(f"{type(current).__name__} cannot go from {current} to {new}.")
    return new


def _next(current: EndpointStatus | TransformJobStatus) -> frozenset[StrEnum]:
    if isinstance(current, EndpointStatus):
        return _ENDPOINT_NEXT[current]
    return _TRANSFORM_JOB_NEXT[current]
