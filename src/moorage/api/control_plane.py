"""The control plane adapter: JSON 1.1 (``POST /``, ``X-Amz-Target: SageMaker.<Op>``).

Each operation validates its input against botocore's model, calls the control service off the
event loop, and shapes the answer as botocore's service model says (PascalCase keys, epoch
seconds for times, absent members omitted).
"""

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from moorage.api.errors import CONTROL_JSON, CONTROL_PLANE_ERRORS, control_error, lookup, request_id
from moorage.api.validation import is_known_operation, validate_input
from moorage.control import documents
from moorage.control.deployment import UpdatePhase
from moorage.control.service import ControlService, EndpointView
from moorage.domain import EndpointStatus, TransformJobStatus
from moorage.errors import MoorageError, ValidationError
from moorage.http import Request, Response
from moorage.jobs import TransformSettings
from moorage.store import ListQuery, Page, SortBy, SortOrder, TransformJobRecord

log = logging.getLogger(__name__)

Params = Mapping[str, Any]
_DEFAULT_MAX_RESULTS: Final = 10
# SageMaker's deepest input shape nests 7 levels. Validation and storage recurse once per level
# or more, so a body nested hundreds deep (in an unknown member too) must stop here.
_MAX_DEPTH: Final = 32


def _is_too_deep(params: dict[str, Any]) -> bool:
    level: list[Any] = [params]
    for _ in range(_MAX_DEPTH):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def _time(value: datetime) -> float:
    return round(value.timestamp(), 3)


def _parse_time(value: Any, member: str) -> datetime:
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            # A finite number past what a datetime holds (1e30): the caller's input, not a 500.
            raise ValidationError(f"{member} {value!r} is out of range for a timestamp.") from None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"{member} must be a timestamp, not {value!r}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _query(
    params: Params, statuses: type[EndpointStatus | TransformJobStatus] = EndpointStatus
) -> ListQuery:
    times = {
        "creation_time_before": "CreationTimeBefore",
        "creation_time_after": "CreationTimeAfter",
        "last_modified_before": "LastModifiedTimeBefore",
        "last_modified_after": "LastModifiedTimeAfter",
    }
    bounds = {key: _parse_time(params[m], m) for key, m in times.items() if m in params}
    return ListQuery(
        name_contains=params.get("NameContains"),
        status_equals=statuses(params["StatusEquals"]) if "StatusEquals" in params else None,
        sort_by=SortBy(params.get("SortBy", SortBy.CREATION_TIME)),
        sort_order=SortOrder(params.get("SortOrder", SortOrder.DESCENDING)),
        max_results=int(params.get("MaxResults", _DEFAULT_MAX_RESULTS)),
        next_token=params.get("NextToken"),
        **bounds,
    )


def _page(key: str, page: Page[Any], item: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    answer: dict[str, Any] = {key: [item(record) for record in page.items]}
    if page.next_token:
        answer["NextToken"] = page.next_token
    return answer


def _echo(document: Params, **extra: Any) -> dict[str, Any]:
    """A Describe answer: the stored create input (without its tags) plus ARN and times."""
    answer = {k: v for k, v in document.items() if k != "Tags"}
    answer.update(extra)
    return answer


class ControlPlane:
    def __init__(self, service: ControlService) -> None:
        self._service = service
        self._operations: dict[str, Callable[[Params], dict[str, Any]]] = {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "ListModels": self.list_models,
            "DeleteModel": self.delete_model,
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "DeleteEndpointConfig": self.delete_endpoint_config,
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "ListEndpoints": self.list_endpoints,
            "UpdateEndpoint": self.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": self.update_weights_and_capacities,
            "DeleteEndpoint": self.delete_endpoint,
            "CreateTransformJob": self.create_transform_job,
            "DescribeTransformJob": self.describe_transform_job,
            "ListTransformJobs": self.list_transform_jobs,
            "StopTransformJob": self.stop_transform_job,
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
            # moorage keeps no monitoring schedules and no lineage contexts, so these lists are
            # empty; the SDK's Predictor.list_monitors() and endpoint_context() ask for them.
            "ListMonitoringSchedules": lambda _: {"MonitoringScheduleSummaries": []},
            "ListContexts": lambda _: {"ContextSummaries": []},
        }

    @property
    def operations(self) -> frozenset[str]:
        """The SageMaker operations this adapter serves."""
        return frozenset(self._operations)

    async def handle(self, request: Request) -> Response:
        prefix, _, name = request.headers.get("x-amz-target", "").partition(".")
        operation = self._operations.get(name) if prefix == "SageMaker" else None
        if operation is None:
            known = prefix == "SageMaker" and is_known_operation(name)
            message = (
                f"moorage does not implement SageMaker.{name} yet."
                if known
                else f"Unknown operation {request.headers.get('x-amz-target')!r}."
            )
            return control_error(400, "UnknownOperationException", message)
        try:
            params = json.loads(request.body or b"{}")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested ~1000 deep
            return control_error(400, "SerializationException", f"Body is not JSON: {exc}")
        if not isinstance(params, dict):
            return control_error(400, "SerializationException", "Body must be a JSON object.")
        if _is_too_deep(params):
            return control_error(
                400,
                "SerializationException",
                f"Body is nested deeper than {_MAX_DEPTH} levels; no SageMaker input is.",
            )
        try:
            result = await asyncio.to_thread(self._run, name, operation, params)
        except MoorageError as exc:
            status, code = lookup(CONTROL_PLANE_ERRORS, exc)
            return control_error(status, code, str(exc))
        except Exception:
            log.exception("SageMaker.%s failed", name)
            return control_error(500, "InternalFailure", f"SageMaker.{name} failed unexpectedly.")
        return Response(
            200,
            json.dumps(result).encode(),
            [("Content-Type", CONTROL_JSON), ("x-amzn-RequestId", request_id())],
        )

    @staticmethod
    def _run(
        name: str, operation: Callable[[Params], dict[str, Any]], params: Params
    ) -> dict[str, Any]:
        validate_input(name, params)
        return operation(params)

    # models

    def create_model(self, params: Params) -> dict[str, Any]:
        record = self._service.create_model(_without_tags(params), params.get("Tags", []))
        return {"ModelArn": record.arn}

    def describe_model(self, params: Params) -> dict[str, Any]:
        record = self._service.model(params["ModelName"])
        return _echo(
            record.document,
            # SageMaker always answers it, false unless the model was created with true.
            EnableNetworkIsolation=bool(record.document.get("EnableNetworkIsolation", False)),
            ModelName=record.name,
            ModelArn=record.arn,
            CreationTime=_time(record.creation_time),
        )

    def list_models(self, params: Params) -> dict[str, Any]:
        page = self._service.list_models(_query(params))
        return _page(
            "Models",
            page,
            lambda r: {
                "ModelName": r.name,
                "ModelArn": r.arn,
                "CreationTime": _time(r.creation_time),
            },
        )

    def delete_model(self, params: Params) -> dict[str, Any]:
        self._service.delete_model(params["ModelName"])
        return {}

    # endpoint configs

    def create_endpoint_config(self, params: Params) -> dict[str, Any]:
        record = self._service.create_endpoint_config(_without_tags(params), params.get("Tags", []))
        return {"EndpointConfigArn": record.arn}

    def describe_endpoint_config(self, params: Params) -> dict[str, Any]:
        record = self._service.endpoint_config(params["EndpointConfigName"])
        return _echo(
            record.document,
            EndpointConfigName=record.name,
            EndpointConfigArn=record.arn,
            CreationTime=_time(record.creation_time),
        )

    def list_endpoint_configs(self, params: Params) -> dict[str, Any]:
        page = self._service.list_endpoint_configs(_query(params))
        return _page(
            "EndpointConfigs",
            page,
            lambda r: {
                "EndpointConfigName": r.name,
                "EndpointConfigArn": r.arn,
                "CreationTime": _time(r.creation_time),
            },
        )

    def delete_endpoint_config(self, params: Params) -> dict[str, Any]:
        self._service.delete_endpoint_config(params["EndpointConfigName"])
        return {}

    # endpoints

    def create_endpoint(self, params: Params) -> dict[str, Any]:
        record = self._service.create_endpoint(_without_tags(params), params.get("Tags", []))
        return {"EndpointArn": record.arn}

    def describe_endpoint(self, params: Params) -> dict[str, Any]:
        return endpoint_description(self._service.describe_endpoint(params["EndpointName"]))

    def list_endpoints(self, params: Params) -> dict[str, Any]:
        page = self._service.list_endpoints(_query(params))
        return _page(
            "Endpoints",
            page,
            lambda r: {
                "EndpointName": r.name,
                "EndpointArn": r.arn,
                "CreationTime": _time(r.creation_time),
                "LastModifiedTime": _time(r.last_modified_time),
                "EndpointStatus": str(r.status),
            },
        )

    def update_endpoint(self, params: Params) -> dict[str, Any]:
        record = self._service.update_endpoint(params)
        return {"EndpointArn": record.arn}

    def update_weights_and_capacities(self, params: Params) -> dict[str, Any]:
        record = self._service.update_weights_and_capacities(
            params["EndpointName"], list(params["DesiredWeightsAndCapacities"])
        )
        return {"EndpointArn": record.arn}

    def delete_endpoint(self, params: Params) -> dict[str, Any]:
        self._service.delete_endpoint(params["EndpointName"])
        return {}

    # transform jobs

    def create_transform_job(self, params: Params) -> dict[str, Any]:
        TransformSettings.read(params)  # the rules botocore's model cannot say
        record = self._service.create_transform_job(_without_tags(params), params.get("Tags", []))
        return {"TransformJobArn": record.arn}

    def describe_transform_job(self, params: Params) -> dict[str, Any]:
        record = self._service.transform_job(params["TransformJobName"])
        answer = {k: v for k, v in record.document.items() if k != "ResolvedModel"}
        answer.update(_transform_job_summary(record))
        del answer["LastModifiedTime"]  # not a member of DescribeTransformJob's answer
        if record.start_time is not None:
            answer["TransformStartTime"] = _time(record.start_time)
        return answer

    def list_transform_jobs(self, params: Params) -> dict[str, Any]:
        page = self._service.list_transform_jobs(_query(params, TransformJobStatus))
        return _page("TransformJobSummaries", page, _transform_job_summary)

    def stop_transform_job(self, params: Params) -> dict[str, Any]:
        self._service.stop_transform_job(params["TransformJobName"])
        return {}

    # tags

    def add_tags(self, params: Params) -> dict[str, Any]:
        self._service.add_tags(params["ResourceArn"], list(params["Tags"]))
        return {"Tags": list(params["Tags"])}

    def list_tags(self, params: Params) -> dict[str, Any]:
        page = self._service.list_tags(
            params["ResourceArn"], params.get("NextToken"), int(params.get("MaxResults", 50))
        )
        return _page("Tags", page, lambda t: {"Key": t.key, "Value": t.value})

    def delete_tags(self, params: Params) -> dict[str, Any]:
        self._service.delete_tags(params["ResourceArn"], list(params["TagKeys"]))
        return {}


def _transform_job_summary(record: TransformJobRecord) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "TransformJobName": record.name,
        "TransformJobArn": record.arn,
        "TransformJobStatus": str(record.status),
        "CreationTime": _time(record.creation_time),
        "LastModifiedTime": _time(record.last_modified_time),
    }
    if record.end_time is not None:
        summary["TransformEndTime"] = _time(record.end_time)
    if record.failure_reason:
        summary["FailureReason"] = record.failure_reason
    return summary


def _without_tags(params: Params) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "Tags"}


def endpoint_description(view: EndpointView) -> dict[str, Any]:
    """DescribeEndpoint's answer for ``view`` (the console shows it too)."""
    record = view.record
    answer: dict[str, Any] = {
        "EndpointName": record.name,
        "EndpointArn": record.arn,
        "EndpointConfigName": record.endpoint_config_name,
        "EndpointStatus": str(record.status),
        "CreationTime": _time(record.creation_time),
        "LastModifiedTime": _time(record.last_modified_time),
    }
    if record.failure_reason:
        answer["FailureReason"] = record.failure_reason
    desired = record.document.get("Variants", {})
    config = documents.deployed_config(record.document.get("Resolved"))
    routing = {
        v["VariantName"]: v["RoutingConfig"]
        for v in config.get("ProductionVariants", ())
        if "RoutingConfig" in v
    }
    variants = []
    for name, wanted in desired.items():
        summary: dict[str, Any] = {"VariantName": name, **wanted}
        if name in routing:
            summary["RoutingConfig"] = routing[name]
        image = view.images.get(name)
        if image:
            summary["DeployedImages"] = [
                {
                    "SpecifiedImage": image,
                    "ResolvedImage": image,
                    "ResolutionTime": _time(record.creation_time),
                }
            ]
        running = view.fleet.variants.get(name) if view.fleet is not None else None
        if running is not None:
            summary["CurrentWeight"] = running.route.weight
            serverless = running.variant.serverless_config
            if serverless is None:
                summary["CurrentInstanceCount"] = len(running.instances)
            else:
                summary["CurrentServerlessConfig"] = documents.serverless_document(serverless)
        variants.append(summary)
    answer["ProductionVariants"] = variants
    capture = record.document.get("DataCaptureConfig")
    if capture:
        answer["DataCaptureConfig"] = _capture_summary(capture)
    for member in ("AsyncInferenceConfig", "MetricsConfig", "CrossRegionTrafficConfig"):
        if value := config.get(member):
            answer[member] = value
    if record.document.get("DeploymentConfig"):
        answer["LastDeploymentConfig"] = record.document["DeploymentConfig"]
    pending = record.document.get("Pending")
    if record.pending_config_name and pending is not None:
        answer["PendingDeploymentSummary"] = {
            "EndpointConfigName": record.pending_config_name,
            "ProductionVariants": [
                {"VariantName": n, **w, "VariantStatus": [_variant_status(view.phase)]}
                for n, w in pending.get("Variants", {}).items()
            ],
            "StartTime": _time(record.last_modified_time),
        }
    return answer


def _variant_status(phase: UpdatePhase | None) -> dict[str, Any]:
    """A pending variant's status: where the update is, or Creating until it starts."""
    if phase is None:
        return {"Status": "Creating"}
    return {"Status": phase.status, "StartTime": _time(phase.started)}


def _capture_summary(capture: Params) -> dict[str, Any]:
    """DataCaptureConfigSummary. CurrentSamplingPercentage is the config's initial one: nothing
    changes it while the endpoint runs."""
    enabled = capture.get("EnableCapture", True)
    summary = {
        "EnableCapture": enabled,
        "CaptureStatus": "Started" if enabled else "Stopped",
        "CurrentSamplingPercentage": capture["InitialSamplingPercentage"],
        "DestinationS3Uri": capture["DestinationS3Uri"],
    }
    # Required in the service model, but no key was given: an empty one would not be a key.
    if "KmsKeyId" in capture:
        summary["KmsKeyId"] = capture["KmsKeyId"]
    return summary
