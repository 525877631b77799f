"""What the store hands back: immutable records of stored resources, and pages of them.

A record's ``document`` is the resource's JSON as ``api`` validated it (PascalCase wire keys);
each read decodes a fresh copy, so changing it changes nothing stored.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeAlias, TypeVar

from moorage.domain import Endpoint

#: A JSON object: the wire input of a Create call, as stored. ``Any`` because it is JSON that
#: ``api`` checked against botocore's model and turns into typed records itself.
JsonObject: TypeAlias = Mapping[str, Any]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class DocumentRecord:
    """A stored immutable resource: its name as created, ARN, creation time and document."""

    name: str
    arn: str
    creation_time: datetime
    document: JsonObject


@dataclass(frozen=True, kw_only=True)
class ModelRecord(DocumentRecord):
    """A stored model; ``document`` is the CreateModel input."""


@dataclass(frozen=True, kw_only=True)
class EndpointConfigRecord(DocumentRecord):
    """A stored endpoint config; ``document`` is the CreateEndpointConfig input."""


@dataclass(frozen=True, kw_only=True)
class EndpointRecord(Endpoint):
    """A stored endpoint: the domain's ``Endpoint``, plus what it should run.

    ``document`` holds the desired state the columns do not (DeploymentConfig, desired variant
    weights and counts, …). ``pending_config_name`` is the config an update is moving to, while
    it is in progress. ``generation`` goes up by one on every write: pass it back to
    ``Endpoints.update`` to write only if nothing changed since this read.
    """

    generation: int
    document: JsonObject
    pending_config_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class Tag:
    """One tag of a resource."""

    key: str
    value: str


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_token`` fetches the next one, None on the last page."""

    items: tuple[T, ...]
    next_token: str | None = None
