"""Server-side input validation for SageMaker control-plane operations, driven by botocore's model.

botocore validates only required members, Python types and minimums on the client (spec/API.md
§0), so the server enforces the rest of the operation's input shape: required members, string
length and ``pattern`` (full match, see ``_patterns``), ``enum``, numeric ranges, list and map
sizes, and every nested member, map key and map value.

Errors are aggregated the AWS way into one ``ValidationError``::

    1 validation error detected: Value 'a_b' at 'endpointName' failed to satisfy constraint:
    Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}

Member paths are lowerCamelCase; list members read ``productionVariants.1.member.variantName``
(1-based). A list of scalars or a map reports once for the whole collection, listing all the
member shape's constraints, as AWS does (``Map value must satisfy constraint: [...]``).

Choices where AWS's behaviour is not a wire contract:

* Unknown members are ignored, as AWS JSON services do, so newer clients keep working.
* JSON ``null`` counts as absent.
* Wrong JSON types (a number for a string, …) are reported as violations in the same message;
  AWS answers those with a SerializationException instead.
* Patterns are shown with a leading ``^``, as SageMaker's messages show them (botocore's model
  dropped it), except for the shapes SageMaker's own model leaves unanchored
  (``_UNANCHORED_PATTERNS``).
* (moorage) Storage URLs (``ModelDataUrl``, ``S3Uri``, ``S3OutputPath``, …) may also be
  ``file://`` URLs or absolute local paths (DESIGN.md §5); SageMaker accepts only s3/https.
* Values of ``sensitive`` shapes are not echoed: ``Value at 'x' failed to satisfy constraint``.
"""

import datetime as dt
import json
import math
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from moorage.api._patterns import compile_pattern
from moorage.errors import NotFound, ValidationError

_SERVICE = "sagemaker"
# Shapes of storage URLs, whose s3/https pattern moorage widens to local files.
_STORAGE_URL_SHAPES = frozenset({"Url", "S3ModelUri", "S3Uri", "DestinationS3Uri"})
# Shapes whose pattern SageMaker shows as is: its API reference lists them without ``^``, and
# real answers quote them so ("Value '' at 'resourceArn' failed to satisfy constraint: Member
# must satisfy regular expression pattern: arn:aws[a-z-]*:sagemaker:[a-z0-9-]*:[0-9]{12}:.+").
_UNANCHORED_PATTERNS = frozenset({"ResourceArn"})
_CONTAINERS: dict[str, type] = {"structure": Mapping, "list": list, "map": Mapping}
_SCALARS = frozenset(
    {"string", "integer", "long", "float", "double", "boolean", "timestamp", "blob"}
)


def is_known_operation(name: str) -> bool:
    """Whether ``name`` (``CreateEndpoint``, without the ``SageMaker.`` prefix) is in the model."""
    return name in _operation_names()


def validate_input(operation: str, params: Mapping[str, Any]) -> None:
    """Check ``params`` (the decoded JSON body) against ``operation``'s input shape.

    Raises ``ValidationError`` listing every violation, or ``NotFound`` for an operation the
    model does not have (check ``is_known_operation`` first to answer UnknownOperationException).
    """
    if not is_known_operation(operation):
        raise NotFound(f"Unknown operation '{operation}'.")
    shape = _service_model().operation_model(operation).input_shape
    if shape is None:
        return
    if not isinstance(params, Mapping):
        raise ValidationError("The request body must be a JSON object.")
    violations = list(_check_structure(shape, params, ""))
    if violations:
        count = len(violations)
        noun = "error" if count == 1 else "errors"
        raise ValidationError(f"{count} validation {noun} detected: " + "; ".join(violations))


_model: Any = None
_names: frozenset[str] = frozenset()


def load(operations: Iterable[str] | None = None) -> None:
    """Load botocore's SageMaker model, keeping only the shapes ``operations`` reach.

    The whole model is some 5 MB of JSON for hundreds of operations; a server validates a few
    dozen, so it calls this once at start with the operations it serves. The model is then
    parsed and cut down in a child process: parsed here, it would leave ~10 MiB of fragmented
    heap behind in a long-running server. Without a call, the whole model loads on first use.
    """
    global _model, _names
    from botocore.model import ServiceModel

    if operations is None:
        raw = _raw_model()
        _names = frozenset(raw["operations"])
    else:
        command = [sys.executable, "-c", _CHILD, *sorted(operations)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        reduced = json.loads(output)
        raw, _names = reduced["model"], frozenset(reduced["names"])
    _model = ServiceModel(raw, service_name=_SERVICE)


_CHILD = "import sys; from moorage.api.validation import print_reduced; print_reduced(sys.argv[1:])"


def print_reduced(operations: Sequence[str]) -> None:
    """Print the model cut down to ``operations``, and every operation name (see ``load``)."""
    raw = _raw_model()
    kept = {name: raw["operations"][name] for name in operations if name in raw["operations"]}
    model = {
        "metadata": raw["metadata"],
        "operations": kept,
        "shapes": _reachable(raw["shapes"], kept.values()),
    }
    json.dump({"names": sorted(raw["operations"]), "model": model}, sys.stdout)


def _raw_model() -> dict[str, Any]:
    # Imported here: only the control plane needs botocore's model.
    from botocore.loaders import Loader

    raw: dict[str, Any] = Loader().load_service_model(_SERVICE, "service-2")
    return raw


def _reachable(
    shapes: Mapping[str, Any], operations: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    pending = [op["input"]["shape"] for op in operations if "input" in op]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        shape = found[name] = shapes[name]
        refs = [m["shape"] for m in shape.get("members", {}).values()]
        refs += [shape[k]["shape"] for k in ("member", "key", "value") if k in shape]
        pending.extend(refs)
    return found


def _service_model() -> Any:
    if _model is None:
        load()
    return _model


def _operation_names() -> frozenset[str]:
    if _model is None:
        load()
    return _names


def _check(shape: Any, value: Any, path: str) -> Iterator[str]:
    kind = shape.type_name
    if kind not in _CONTAINERS:
        for constraint in _scalar_failures(shape, value):
            yield _violation(shape, value, path, constraint)
        return
    if shape.metadata.get("document"):
        return
    is_expected_type = isinstance(value, _CONTAINERS[kind])  # kept apart: narrowing drops Any
    if not is_expected_type:
        yield _violation(shape, value, path, f"Member must be of type {kind}")
        return
    if kind == "structure":
        yield from _check_structure(shape, value, path)
        return
    for constraint in _size_failures(shape, len(value)):
        yield _violation(shape, value, path, constraint)
    if kind == "list":
        yield from _check_list_members(shape, value, path)
    else:
        yield from _check_map_entries(shape, value, path)


def _check_structure(shape: Any, value: Mapping[str, Any], path: str) -> Iterator[str]:
    required = set(shape.required_members)
    for name, member in shape.members.items():
        member_path = f"{path}.{_camel(name)}" if path else _camel(name)
        member_value = value.get(name)
        if member_value is None:
            if name in required:
                yield _violation(member, None, member_path, "Member must not be null")
            continue
        yield from _check(member, member_value, member_path)


def _check_list_members(shape: Any, value: list[Any], path: str) -> Iterator[str]:
    member = shape.member
    if member.type_name in _SCALARS:
        failed = _collection_failures("Member", member, value)
        if failed:
            yield _violation(shape, value, path, failed)
        return
    for index, item in enumerate(value, start=1):
        item_path = f"{path}.{index}.member"
        if item is None:
            yield _violation(member, None, item_path, "Member must not be null")
        else:
            yield from _check(member, item, item_path)


def _check_map_entries(shape: Any, value: Mapping[str, Any], path: str) -> Iterator[str]:
    key_shape, value_shape = shape.key, shape.value
    failed = _collection_failures("Map keys", key_shape, value.keys())
    if failed:
        yield _violation(shape, value, path, failed)
    if value_shape.type_name in _SCALARS:
        failed = _collection_failures("Map value", value_shape, value.values())
        if failed:
            yield _violation(shape, value, path, failed)
        return
    for key, item in value.items():
        yield from _check(value_shape, item, f"{path}.{key}")


def _scalar_failures(shape: Any, value: object) -> list[str]:
    """The constraints a scalar ``value`` fails, in AWS's wording; [] when it conforms."""
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            return ["Member must be of type string"]
        return _string_failures(shape, value)
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return ["Member must be of type integer"]
        return _range_failures(shape, value)
    if kind in ("float", "double"):
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            return ["Member must be of type number"]
        return _range_failures(shape, value)
    if kind == "boolean":
        return [] if isinstance(value, bool) else ["Member must be of type boolean"]
    if kind == "timestamp":
        return [] if _is_timestamp(value) else [_TIMESTAMP_TYPE]
    if kind == "blob":
        return [] if isinstance(value, str) else ["Member must be of type string (base64)"]
    return []


_TIMESTAMP_TYPE = "Member must be a timestamp: epoch seconds or an ISO 8601 string"


def _string_failures(shape: Any, value: str) -> list[str]:
    failures = _size_failures(shape, len(value))
    pattern = shape.metadata.get("pattern")
    if pattern is not None:
        compiled = compile_pattern(pattern)
        if (
            compiled is not None
            and compiled.fullmatch(value) is None
            and not _is_local_storage_url(shape, value)
        ):
            failures.append(_pattern_constraint(shape, pattern))
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        failures.append(_enum_constraint(enum))
    return failures


def _is_local_storage_url(shape: Any, value: str) -> bool:
    return shape.name in _STORAGE_URL_SHAPES and value.startswith(("file://", "/"))


def _size_failures(shape: Any, size: int) -> list[str]:
    return _bound_failures(shape, size, "length")


def _range_failures(shape: Any, value: float) -> list[str]:
    return _bound_failures(shape, value, "value")


def _bound_failures(shape: Any, measure: float, word: str) -> list[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    failures = []
    if high is not None and measure > high:
        failures.append(f"Member must have {word} less than or equal to {high}")
    if low is not None and measure < low:
        failures.append(f"Member must have {word} greater than or equal to {low}")
    return failures


def _is_timestamp(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def _collection_failures(what: str, member: Any, items: Iterable[object]) -> str | None:
    """``Member must satisfy constraint: [...]`` if any item fails, else None.

    Lists all of the member shape's constraints, as AWS does, after any type failures.
    """
    failures: dict[str, None] = {}
    for item in items:
        failures.update(dict.fromkeys(_scalar_failures(member, item)))
    if not failures:
        return None
    constraints = _all_constraints(member)
    listed = [f for f in failures if f not in constraints] + constraints
    return f"{what} must satisfy constraint: [{', '.join(listed)}]"


def _all_constraints(shape: Any) -> list[str]:
    metadata = shape.metadata
    low, high = metadata.get("min"), metadata.get("max")
    word = "length" if shape.type_name == "string" else "value"
    constraints: list[str] = []
    if high is not None:
        constraints.append(f"Member must have {word} less than or equal to {high}")
    if low is not None:
        constraints.append(f"Member must have {word} greater than or equal to {low}")
    if "pattern" in metadata:
        constraints.append(_pattern_constraint(shape, metadata["pattern"]))
    if metadata.get("enum"):
        constraints.append(_enum_constraint(metadata["enum"]))
    return constraints


def _pattern_constraint(shape: Any, pattern: str) -> str:
    anchored = pattern.startswith("^") or shape.name in _UNANCHORED_PATTERNS
    shown = pattern if anchored else "^" + pattern
    return f"Member must satisfy regular expression pattern: {shown}"


def _enum_constraint(enum: Sequence[str]) -> str:
    return f"Member must satisfy enum value set: [{', '.join(enum)}]"


def _violation(shape: Any, value: object, path: str, constraint: str) -> str:
    if shape.metadata.get("sensitive") and value is not None:
        return f"Value at '{path}' failed to satisfy constraint: {constraint}"
    shown = "null" if value is None else f"'{_render(value)}'"
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def _render(value: object) -> str:
    """Java-style ``toString`` of a JSON value, as AWS echoes it in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return str(value)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]
