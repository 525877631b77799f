"""DataProcessing of a transform job: InputFilter, JoinSource=Input, OutputFilter
(spec/TOOLKIT.md §7).

Pure. Records are CSV rows (seen as JSON arrays of their fields, kept as text) or JSON values.
Paths are JSONPath, evaluated by jsonpath-ng, with SageMaker's reading of what a path selects:
one value for a path that names one (``$``, ``$.a``, ``$[0]``), an array of the values for a
path that names several (``$[1:]``, ``$[0,2]``, ``$[*]``), and an object of the named members
for several names (``$['id','SageMakerOutput']``). jsonpath-ng does not parse indexes mixed with
slices (``$[0,5:]``); such a bracket is read as the union of its parts, in order.
"""

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.jsonpath import Child, Fields, Index, JSONPath, Root
from jsonpath_ng.parser import parse as parse_jsonpath

from moorage.errors import ValidationError

_OUTPUT_KEY: Final = "SageMakerOutput"
_INPUT_KEY: Final = "SageMakerInput"


class DataFormat(StrEnum):
    CSV = "text/csv"
    JSON = "application/json"
    JSON_LINES = "application/jsonlines"


class ProcessingError(ValueError):
    """A record cannot be filtered or joined: it does not parse, or a path selects nothing."""


def data_format(content_type: str | None) -> DataFormat | None:
    """The format a MIME type names (parameters ignored), or None for one filters cannot read."""
    if not content_type:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in ("application/jsonl", "application/x-jsonlines"):
        return DataFormat.JSON_LINES
    try:
        return DataFormat(mime)
    except ValueError:
        return None


class JsonPathFilter:
    """A compiled InputFilter or OutputFilter."""

    def __init__(self, text: str, member: str = "filter") -> None:
        self.text = text
        try:
            self._paths = _parse(text.strip())
        except (JsonPathLexerError, JsonPathParserError, ValueError) as exc:
            raise ValidationError(
                f"{member} {text!r} is not a JSONPath moorage can read: {exc}"
            ) from exc
        self._shape = _shape(self._paths[0]) if len(self._paths) == 1 else "many"

    @property
    def is_identity(self) -> bool:
        return len(self._paths) == 1 and isinstance(self._paths[0], Root)

    def select(self, value: Any) -> Any:
        matches = [match for path in self._paths for match in path.find(value)]
        if self._shape == "one":
            if not matches:
                raise ProcessingError(f"{self.text} selects nothing from the record.")
            return matches[0].value
        if self._shape == "members":
            return {str(m.path): m.value for m in matches}
        return [m.value for m in matches]


def _parse(text: str) -> list[JSONPath]:
    """The path, or the paths whose matches together are what it selects."""
    head, parts, tail = _mixed_bracket(text)
    if not parts:
        return [parse_jsonpath(text)]
    return [path for part in parts for path in _parse(f"{head}[{part}]{tail}")]


def _mixed_bracket(text: str) -> tuple[str, list[str], str]:
    """The first bracket mixing indexes and slices, cut up: (before, its parts, after)."""
    depth, start, quote = 0, -1, ""
    for at, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth, start = depth + 1, at if depth == 0 else start
        elif char == "]" and depth:
            depth -= 1
            inner = text[start + 1 : at]
            if depth == 0 and "," in inner and ":" in inner and not any(q in inner for q in "'\""):
                return text[:start], [p.strip() for p in inner.split(",")], text[at + 1 :]
    return text, [], ""


def _shape(path: JSONPath) -> str:
    """'one' value, an array of 'many', or an object of named 'members'."""
    steps: list[JSONPath] = []
    while isinstance(path, Child):
        steps.insert(0, path.right)
        path = path.left
    steps.insert(0, path)
    if all(_is_one(step) for step in steps):
        return "one"
    last = steps[-1]
    if all(_is_one(step) for step in steps[:-1]) and isinstance(last, Fields):
        return "members"
    return "many"


def _is_one(step: JSONPath) -> bool:
    if isinstance(step, Root):
        return True
    if isinstance(step, Index):
        return len(step.indices) == 1
    if isinstance(step, Fields):
        return len(step.fields) == 1 and step.fields[0] != "*"
    return False


@dataclass(frozen=True)
class DataProcessing:
    """What a job does to records around the model; the identity when nothing is set."""

    input_filter: JsonPathFilter | None = None
    output_filter: JsonPathFilter | None = None
    join_input: bool = False
    input_format: DataFormat | None = None
    output_format: DataFormat | None = None
    #: Whether the request body is one JSON document (application/json, not split).
    is_whole_json: bool = False

    @property
    def filters_input(self) -> bool:
        return self.input_filter is not None

    @property
    def processes_output(self) -> bool:
        return self.join_input or self.output_filter is not None

    def filter_input(self, record: bytes) -> bytes:
        """The record as sent to the model: InputFilter applied, to each line of the body
        unless it is one JSON document."""
        assert self.input_filter is not None
        assert self.input_format is not None
        selected = self.input_filter
        if self.is_whole_json:
            return _dump(selected.select(_load(record, self.input_format)), self.input_format)
        return b"\n".join(
            _dump(selected.select(_load(line, self.input_format)), self.input_format)
            for line in _lines(record)
        )

    def records_of(self, body: bytes) -> list[bytes]:
        """The input records a request body holds, each as joined (before InputFilter)."""
        return [body] if self.is_whole_json else _lines(body)

    def process_output(self, inputs: Sequence[bytes], output: bytes) -> list[bytes]:
        """The output records of one request whose input records were ``inputs``: joined
        with their input and filtered, as the job's output holds them."""
        assert self.output_format is not None
        outputs = _split_output(output, len(inputs), self.output_format)
        records = []
        for source, result in zip(inputs, outputs, strict=True):
            value = _load(result, self.output_format)
            if self.join_input:
                assert self.input_format is not None
                value = _join(_load(source, self.input_format), value, self.output_format)
            if self.output_filter is not None:
                value = self.output_filter.select(value)
            records.append(_dump(value, self.output_format))
        return records


def _split_output(output: bytes, count: int, fmt: DataFormat) -> list[bytes]:
    """One output per input record: the answer's lines, or the items of a JSON array answer."""
    if count == 1 and fmt is DataFormat.JSON:
        return [output.strip()]
    lines = _lines(output)
    if len(lines) == count:
        return lines
    if fmt is not DataFormat.CSV and count > 1:
        try:
            items = json.loads(output)
        except ValueError:
            items = None
        if isinstance(items, list) and len(items) == count:
            return [json.dumps(item).encode() for item in items]
    raise ProcessingError(
        f"The model answered {len(lines)} records for {count} input records; to join or filter "
        "its output, it must answer one record per input record, in order."
    )


def _join(source: Any, result: Any, fmt: DataFormat) -> Any:
    if fmt is DataFormat.CSV:
        return [*_as_row(source), *_as_row(result)]
    if isinstance(source, Mapping):
        return {**source, _OUTPUT_KEY: result}
    return {_INPUT_KEY: source, _OUTPUT_KEY: result}


def _as_row(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _lines(body: bytes) -> list[bytes]:
    lines = (line.removesuffix(b"\r") for line in body.split(b"\n"))
    return [line for line in lines if line.strip()]


def _load(record: bytes, fmt: DataFormat) -> Any:
    try:
        text = record.decode("utf-8")
        if fmt is DataFormat.CSV:
            rows = list(csv.reader(io.StringIO(text)))
            if len(rows) != 1:
                raise ValueError(f"{len(rows)} CSV rows where one was expected")
            return rows[0]
        return json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError too
        shown = record[:80].decode("utf-8", "replace")
        raise ProcessingError(f"Cannot read the record {shown!r} as {fmt}: {exc}") from exc


def _dump(value: Any, fmt: DataFormat) -> bytes:
    if fmt is DataFormat.CSV:
        out = io.StringIO()
        row = value if isinstance(value, list) else [value]
        csv.writer(out, lineterminator="").writerow(_csv_cell(v) for v in row)
        return out.getvalue().encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _csv_cell(value: Any) -> Any:
    # A JSON value in a CSV row (a joined answer's list, say) is written as JSON.
    return json.dumps(value) if isinstance(value, list | dict) else value
