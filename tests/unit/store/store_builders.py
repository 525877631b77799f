"""Times and ARNs the store tests build records from."""

from datetime import UTC, datetime, timedelta

from moorage.domain import ResourceKind, arn

T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """A time ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def arn_of(kind: ResourceKind, name: str) -> str:
    return arn(kind, name, region="us-east-1", account="000000000000")


def create_endpoint(store, name, *, config="c", document=None, creation_time=T0):
    return store.endpoints.create(
        name,
        arn_of(ResourceKind.ENDPOINT, name),
        endpoint_config_name=config,
        document={} if document is None else document,
        creation_time=creation_time,
    )
