"""A CreateTransformJob input read into what the runner acts on, with the rules that span its
members (spec/TOOLKIT.md §7, spec/LIMITS.md §5), checked when the job is created."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from moorage.capture import destination
from moorage.contract import ACCEPT, CONTENT_TYPE
from moorage.domain import check_instance_count
from moorage.errors import ValidationError
from moorage.jobs.data_processing import DataFormat, DataProcessing, JsonPathFilter, data_format
from moorage.jobs.records import BatchStrategy, SplitType

_MB: Final = 1024 * 1024
DEFAULT_MAX_PAYLOAD_MB: Final = 6
MAX_PAYLOAD_MB: Final = 100
DEFAULT_TIMEOUT_S: Final = 600
DEFAULT_RETRIES: Final = 3
# What /execution-parameters answers for BatchStrategy.
_STRATEGIES: Final = {
    "MULTI_RECORD": BatchStrategy.MULTI_RECORD,
    "SINGLE_RECORD": BatchStrategy.SINGLE_RECORD,
}


@dataclass(frozen=True, slots=True)
class Effective:
    """What a job runs with, once the container's /execution-parameters are known."""

    max_concurrent: int
    max_payload_bytes: int | None  # None: no limit (MaxPayloadInMB 0)
    strategy: BatchStrategy


@dataclass(frozen=True)
class TransformSettings:
    input_uri: str
    data_type: str
    content_type: str | None
    compression: str
    split_type: SplitType
    output_path: str
    accept: str | None
    assemble_with_line: bool
    instance_type: str
    instance_count: int
    max_concurrent: int | None
    max_payload_mb: int | None
    strategy: BatchStrategy | None
    timeout_s: int
    retries: int
    environment: Mapping[str, str] = field(default_factory=dict)
    processing: DataProcessing = field(default_factory=DataProcessing)

    @classmethod
    def read(cls, document: Mapping[str, Any]) -> "TransformSettings":
        """The settings of a CreateTransformJob input; ValidationError for one moorage cannot
        run."""
        source = document["TransformInput"]["DataSource"]["S3DataSource"]
        transform_input = document["TransformInput"]
        output = document["TransformOutput"]
        resources = document["TransformResources"]
        client = document.get("ModelClientConfig", {})
        data_type = source["S3DataType"]
        if data_type not in ("S3Prefix", "ManifestFile"):
            raise ValidationError(
                f"S3DataType {data_type} is not supported by moorage for transform jobs; use "
                "S3Prefix or ManifestFile."
            )
        if not source["S3Uri"].startswith(("s3://", "file://", "/")):
            raise ValidationError(
                f"S3Uri {source['S3Uri']!r} cannot be read by moorage: give s3://bucket/prefix, "
                "or a local folder as file:///path."
            )
        destination(output["S3OutputPath"], "S3OutputPath")
        strategy = document.get("BatchStrategy")
        split = SplitType(transform_input.get("SplitType", SplitType.NONE))
        settings = cls(
            input_uri=source["S3Uri"],
            data_type=data_type,
            content_type=transform_input.get("ContentType"),
            compression=transform_input.get("CompressionType", "None"),
            split_type=split,
            output_path=output["S3OutputPath"],
            accept=output.get("Accept"),
            assemble_with_line=output.get("AssembleWith", "None") == "Line",
            instance_type=resources["InstanceType"],
            instance_count=int(resources["InstanceCount"]),
            # 0 means "not set": the container's answer, else the default.
            max_concurrent=document.get("MaxConcurrentTransforms") or None,
            max_payload_mb=document.get("MaxPayloadInMB"),
            strategy=BatchStrategy(strategy) if strategy else None,
            timeout_s=int(client.get("InvocationsTimeoutInSeconds", DEFAULT_TIMEOUT_S)),
            retries=int(client.get("InvocationsMaxRetries", DEFAULT_RETRIES)),
            environment=dict(document.get("Environment", {})),
            processing=_processing(document, split),
        )
        settings._check_limits()
        return settings

    def _check_limits(self) -> None:
        payload = self.max_payload_mb
        if payload is not None and payload > MAX_PAYLOAD_MB:
            raise ValidationError(
                f"MaxPayloadInMB {payload} is over the limit of {MAX_PAYLOAD_MB}."
            )
        if self.max_concurrent and payload and self.max_concurrent * payload > MAX_PAYLOAD_MB:
            raise ValidationError(
                f"MaxConcurrentTransforms ({self.max_concurrent}) times MaxPayloadInMB "
                f"({payload}) must not be over {MAX_PAYLOAD_MB}."
            )
        if self.instance_count < 1:
            raise ValidationError("TransformResources.InstanceCount must be 1 or more.")
        check_instance_count(self.instance_count, "TransformResources.InstanceCount")

    def effective(self, parameters: Mapping[str, Any] | None) -> Effective:
        """The job's own values, else the container's (``/execution-parameters``), else the
        defaults."""
        given = parameters or {}
        concurrent = self.max_concurrent or _positive(given.get("MaxConcurrentTransforms")) or 1
        payload = self.max_payload_mb
        if payload is None:
            answered = given.get("MaxPayloadInMB")
            payload = answered if isinstance(answered, int) and answered >= 0 else None
        if payload is None:
            payload = DEFAULT_MAX_PAYLOAD_MB
        strategy = self.strategy or _STRATEGIES.get(str(given.get("BatchStrategy", "")).upper())
        return Effective(
            max_concurrent=concurrent,
            max_payload_bytes=payload * _MB if payload else None,
            strategy=strategy or BatchStrategy.MULTI_RECORD,
        )

    def container_environment(self) -> dict[str, str]:
        """What the job's instances get over the model's Environment (spec/CONTAINER.md §3)."""
        env = {"SAGEMAKER_BATCH": "true"}
        if self.max_payload_mb:  # 0 is no limit, which the variable cannot say
            env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(self.max_payload_mb)
        if self.strategy is not None:
            env["SAGEMAKER_BATCH_STRATEGY"] = {
                BatchStrategy.MULTI_RECORD: "MULTI_RECORD",
                BatchStrategy.SINGLE_RECORD: "SINGLE_RECORD",
            }[self.strategy]
        if self.max_concurrent is not None:
            env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(self.max_concurrent)
        return {**env, **self.environment}

    def headers(self) -> list[tuple[str, str]]:
        headers = []
        if self.content_type:
            headers.append((CONTENT_TYPE, self.content_type))
        if self.accept:
            headers.append((ACCEPT, self.accept))
        return headers


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _processing(document: Mapping[str, Any], split: SplitType) -> DataProcessing:
    given = document.get("DataProcessing", {})
    filters = {
        member: JsonPathFilter(given[member], member)
        for member in ("InputFilter", "OutputFilter")
        if given.get(member)
    }
    input_filter = filters.get("InputFilter")
    output_filter = filters.get("OutputFilter")
    input_filter = None if input_filter is None or input_filter.is_identity else input_filter
    output_filter = None if output_filter is None or output_filter.is_identity else output_filter
    join = given.get("JoinSource", "None") == "Input"
    if input_filter is None and output_filter is None and not join:
        return DataProcessing()
    content_type = document["TransformInput"].get("ContentType")
    accept = document["TransformOutput"].get("Accept")
    input_format = data_format(content_type)
    output_format = data_format(accept) or (input_format if not accept else None)
    if split not in (SplitType.NONE, SplitType.LINE):
        raise ValidationError(
            f"DataProcessing needs SplitType Line or None (CSV or JSON records), not {split}."
        )
    needs_input = input_filter is not None or join
    if needs_input and input_format is None:
        raise ValidationError(
            f"InputFilter and JoinSource need TransformInput.ContentType text/csv, "
            f"application/json or application/jsonlines, not {content_type!r}."
        )
    if output_filter is not None or join:
        if output_format is None:
            raise ValidationError(
                f"OutputFilter and JoinSource need TransformOutput.Accept text/csv, "
                f"application/json or application/jsonlines, not {accept!r}."
            )
    if join and (input_format is DataFormat.CSV) != (output_format is DataFormat.CSV):
        raise ValidationError(
            f"JoinSource Input joins records of one kind: ContentType {content_type!r} and "
            f"Accept {accept!r} must both be CSV or both JSON."
        )
    return DataProcessing(
        input_filter=input_filter,
        output_filter=output_filter,
        join_input=join,
        input_format=input_format,
        output_format=output_format,
        is_whole_json=input_format is DataFormat.JSON and split is SplitType.NONE,
    )
