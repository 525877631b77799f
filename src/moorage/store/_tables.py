"""The tables as the code queries them, at the latest schema version.

``_migrations`` builds them; a test checks that a migrated database matches these columns.
Names are stored twice: ``name`` as created, ``name_key`` lower-cased for case-insensitive
uniqueness, lookups and sorting (SageMaker lower-cases names inside ARNs). Times are integer
milliseconds since the epoch (``_times``).
"""

from typing import Final

import sqlalchemy as sa

metadata: Final = sa.MetaData()

#: The longest name SageMaker allows for any of these resources.
_NAME = sa.String(63)
_ARN = sa.String(256)


def _document_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("name_key", _NAME, primary_key=True),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("arn", _ARN, nullable=False),
        sa.Column("creation_time_ms", sa.BigInteger, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
    )


models: Final = _document_table("models")
endpoint_configs: Final = _document_table("endpoint_configs")

endpoints: Final = sa.Table(
    "endpoints",
    metadata,
    sa.Column("name_key", _NAME, primary_key=True),
    sa.Column("name", _NAME, nullable=False),
    sa.Column("arn", _ARN, nullable=False),
    sa.Column("endpoint_config_name", _NAME, nullable=False),
    sa.Column("pending_config_name", _NAME, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("creation_time_ms", sa.BigInteger, nullable=False),
    sa.Column("last_modified_time_ms", sa.BigInteger, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("document", sa.JSON, nullable=False),
)

tags: Final = sa.Table(
    "tags",
    metadata,
    sa.Column("resource_arn", _ARN, primary_key=True),
    sa.Column("tag_key", sa.String(128), primary_key=True),
    sa.Column("tag_value", sa.String(256), nullable=False),
)

# Accepted InvokeEndpointAsync requests until their result is written: the queue that survives
# restarts (DESIGN.md §4). ``lease_until_ms`` is when a server that took one gives it up unless
# it renews the lease.
async_invocations: Final = sa.Table(
    "async_invocations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("endpoint_key", _NAME, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("request", sa.JSON, nullable=False),
)

# Transform jobs: the CreateTransformJob input (and the model it runs, as of then) in
# ``document``; ``lease_*`` say which server runs an InProgress job, until when unless renewed.
transform_jobs: Final = sa.Table(
    "transform_jobs",
    metadata,
    sa.Column("name_key", _NAME, primary_key=True),
    sa.Column("name", _NAME, nullable=False),
    sa.Column("arn", _ARN, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("creation_time_ms", sa.BigInteger, nullable=False),
    sa.Column("last_modified_time_ms", sa.BigInteger, nullable=False),
    sa.Column("start_time_ms", sa.BigInteger, nullable=True),
    sa.Column("end_time_ms", sa.BigInteger, nullable=True),
    sa.Column("lease_owner", sa.String(36), nullable=True),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Column("document", sa.JSON, nullable=False),
)

schema_version: Final = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at_ms", sa.BigInteger, nullable=False),
)
