"""The console's HTML, with the standard library: every function returns markup in which each
value from a user or the store went through ``_e`` (``html.escape``)."""

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from moorage.http import Response
from moorage.metrics import Backlog, Distribution, Utilization, VariantMetrics

REFRESH_S: Final = 10
_HEADERS: Final = (
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    # No script runs on these pages, whatever a value holds; and no other site frames them.
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
     "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)  # fmt: skip
_STYLE: Final = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.2em 2em;color:#1d1d1f}
a{color:#0b5cad;text-decoration:none}a:hover{text-decoration:underline}
nav{margin-bottom:1em;color:#666}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0 1em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}td{font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;border:1px solid #e4e4e4;padding:8px;overflow-x:auto;font-size:12px}
.ok{color:#0a7a2f}.bad{color:#b3261e}.busy{color:#a15c00}.dim{color:#777}
footer{margin-top:2em;color:#777;font-size:12px}
"""
_GOOD: Final = frozenset({"InService", "Completed"})
_BAD: Final = frozenset({"Failed", "OutOfService", "Stopped"})


def _e(value: object) -> str:
    return html.escape(str(value))


def _page(title: str, body: str, *, status: int = 200, refresh: bool = True) -> Response:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    note = f"Refreshes every {REFRESH_S} s. " if refresh else ""
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
        f"<title>{_e(title)} · moorage</title><style>{_STYLE}</style></head><body>"
        f'<nav><a href="/console">moorage console</a></nav><h1>{_e(title)}</h1>{body}'
        f"<footer>{note}Times are UTC. Read-only: change things with boto3, the SageMaker SDK "
        "or the AWS CLI.</footer></body></html>"
    )
    return Response(status, document.encode(), list(_HEADERS))


def message(status: int, title: str, text: str) -> Response:
    return _page(title, f"<p>{_e(text)}</p>", status=status, refresh=False)


@dataclass(frozen=True, slots=True)
class Listed:
    """The newest items of a List call; ``more``: some were left out."""

    items: Sequence[Any]
    more: bool


def _time(value: float | None) -> str:
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _status(status: str) -> str:
    style = "ok" if status in _GOOD else "bad" if status in _BAD else "busy"
    return f'<span class="{style}">{_e(status)}</span>'


def _link(section: str, name: str) -> str:
    return f'<a href="/console/{section}/{_e(quote(name, safe=""))}">{_e(name)}</a>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """``rows`` hold markup already escaped."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="dim">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _more(listed: Listed, limit: int) -> str:
    return f'<p class="dim">The newest {limit} are shown.</p>' if listed.more else ""


def _variant(variant: dict[str, Any]) -> str:
    parts = [f"<b>{_e(variant['VariantName'])}</b>"]
    weight = variant.get("CurrentWeight", variant.get("DesiredWeight"))
    if weight is not None:
        parts.append(f"weight {_e(weight)}")
    serverless = variant.get("CurrentServerlessConfig") or variant.get("DesiredServerlessConfig")
    if serverless is not None:
        text = (
            f"serverless {serverless.get('MemorySizeInMB')} MB, "
            f"max concurrency {serverless.get('MaxConcurrency')}"
        )
        if serverless.get("ProvisionedConcurrency"):
            text += f", provisioned {serverless['ProvisionedConcurrency']}"
        parts.append(_e(text))
    else:
        current = variant.get("CurrentInstanceCount", "—")
        parts.append(_e(f"instances {current}/{variant.get('DesiredInstanceCount', '—')}"))
    return " · ".join(parts)


def _endpoint_row(description: dict[str, Any], kind: str) -> list[str]:
    return [
        _link("endpoints", description["EndpointName"]),
        _e(kind),
        _status(description["EndpointStatus"]),
        _e(description.get("FailureReason", "")),
        _e(description.get("EndpointConfigName", "")),
        "<br>".join(_variant(v) for v in description.get("ProductionVariants", ())),
        _e(_time(description.get("CreationTime"))),
        _e(_time(description.get("LastModifiedTime"))),
    ]


def _containers(model: dict[str, Any]) -> list[dict[str, Any]]:
    containers = model.get("Containers") or []
    return list(containers) or [model.get("PrimaryContainer") or {}]


def _model_row(model: dict[str, Any]) -> list[str]:
    containers = _containers(model)
    mode = "pipeline" if model.get("Containers") else containers[0].get("Mode", "SingleModel")
    return [
        _e(model["ModelName"]),
        _e(mode),
        "<br>".join(_e(c.get("Image", "built-in runtime")) for c in containers),
        "<br>".join(_e(c.get("ModelDataUrl", "—")) for c in containers),
        _e(_time(model.get("CreationTime"))),
    ]


def _config_row(config: dict[str, Any]) -> list[str]:
    variants = []
    for v in config.get("ProductionVariants", ()):
        if "ServerlessConfig" in v:
            size = f"serverless {v['ServerlessConfig'].get('MemorySizeInMB')} MB"
        else:
            size = f"{v.get('InstanceType', '')} x {v.get('InitialInstanceCount', 1)}"
        variants.append(f"<b>{_e(v['VariantName'])}</b> → {_e(v.get('ModelName'))} ({_e(size)})")
    extras = [
        name
        for name, key in (("async", "AsyncInferenceConfig"), ("data capture", "DataCaptureConfig"))
        if config.get(key)
    ]
    return [
        _e(config["EndpointConfigName"]),
        "<br>".join(variants),
        _e(", ".join(extras)),
        _e(_time(config.get("CreationTime"))),
    ]


def _job_row(job: dict[str, Any]) -> list[str]:
    return [
        _link("transform-jobs", job["TransformJobName"]),
        _status(job["TransformJobStatus"]),
        _e(job.get("FailureReason", "")),
        _e(_time(job.get("CreationTime"))),
        _e(_time(job.get("TransformEndTime"))),
    ]


def overview(
    endpoints: Listed, jobs: Listed, models: Listed, configs: Listed, *, limit: int
) -> Response:
    endpoint_columns = ("Name", "Kind", "Status", "Failure reason", "Config", "Variants")
    sections = (
        (
            "Endpoints",
            (*endpoint_columns, "Created", "Modified"),
            [_endpoint_row(d, kind) for d, kind in endpoints.items],
            endpoints,
        ),
        (
            "Transform jobs",
            ("Name", "Status", "Failure reason", "Created", "Ended"),
            list(map(_job_row, jobs.items)),
            jobs,
        ),
        (
            "Models",
            ("Name", "Mode", "Images", "Model data", "Created"),
            list(map(_model_row, models.items)),
            models,
        ),
        (
            "Endpoint configs",
            ("Name", "Variants", "Options", "Created"),
            list(map(_config_row, configs.items)),
            configs,
        ),
    )
    body = "".join(
        f"<h2>{title}</h2>{_table(headers, rows, f'No {title.lower()}.')}{_more(listed, limit)}"
        for title, headers, rows, listed in sections
    )
    return _page("Endpoints and jobs", body)


@dataclass(frozen=True, slots=True)
class Latency:
    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, distribution: Distribution) -> "Latency":
        count = distribution.count
        return cls(
            count,
            distribution.total / count if count else None,
            distribution.quantile(0.5),
            distribution.quantile(0.9),
            distribution.quantile(0.99),
        )


@dataclass(frozen=True, slots=True)
class VariantNumbers:
    """A variant's metrics as of one moment, copied on the event loop."""

    variant: str
    invocations: float
    errors_4xx: float
    errors_5xx: float
    model_errors: float
    model_latency: Latency
    overhead_latency: Latency
    loaded_models: float | None
    cache_hits: float
    cache_lookups: int
    usage: Utilization | None = None

    @classmethod
    def read(
        cls, variant: str, metrics: VariantMetrics, usage: Utilization | None = None
    ) -> "VariantNumbers":
        loaded = metrics.loaded_model_count.read
        return cls(
            variant,
            metrics.invocations.value,
            metrics.errors_4xx.value,
            metrics.errors_5xx.value,
            metrics.model_errors.value,
            Latency.of(metrics.model_latency),
            Latency.of(metrics.overhead_latency),
            loaded() if loaded is not None else None,
            metrics.model_cache_hit.total,
            metrics.model_cache_hit.count,
            usage,
        )


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"


def _duration(microseconds: float | None) -> str:
    if microseconds is None:
        return "—"
    if microseconds < 1_000:
        return f"{microseconds:.0f} µs"
    if microseconds < 1_000_000:
        return f"{microseconds / 1_000:.1f} ms"
    return f"{microseconds / 1_000_000:.2f} s"


def _count(value: float) -> str:
    return f"{value:g}"


def _metrics(numbers: Sequence[VariantNumbers], kind: str) -> str:
    rows = []
    for n in numbers:
        row = [
            f"<b>{_e(n.variant)}</b>",
            *(_count(v) for v in (n.invocations, n.errors_4xx, n.errors_5xx, n.model_errors)),
        ]
        for latency in (n.model_latency, n.overhead_latency):
            row.append(
                " / ".join(
                    _duration(v) for v in (latency.mean, latency.p50, latency.p90, latency.p99)
                )
            )
        usage = n.usage
        row.append(
            " / ".join(
                _percent(v)
                for v in (
                    usage.cpu_percent if usage else None,
                    usage.memory_percent if usage else None,
                )
            )
        )
        if kind == "multi-model":
            hits = f"{n.cache_hits / n.cache_lookups:.0%}" if n.cache_lookups else "—"
            row += [_count(n.loaded_models or 0), hits]
        rows.append(row)
    headers = [
        "Variant",
        "Invocations",
        "4XX errors",
        "5XX errors",
        "Model errors",
        "ModelLatency mean / p50 / p90 / p99",
        "OverheadLatency mean / p50 / p90 / p99",
        "CPU / memory per instance",
    ]
    if kind == "multi-model":
        headers += ["Loaded models", "Cache hits"]
    return _table(headers, rows, "No numbers yet: the endpoint has no running variant.")


def _backlog(backlog: Backlog | None) -> str:
    if backlog is None:
        return ""
    return "<h2>Asynchronous queue</h2>" + _table(
        ("ApproximateBacklogSize", "ApproximateAgeOfOldestRequest", "Instances"),
        [[_count(backlog.size), _e(f"{backlog.oldest_age_s:.1f} s"), _count(backlog.instances)]],
        "",
    )


def _logs(name: str, streams: Sequence[tuple[str, list[str]]], lines: int) -> str:
    if not streams:
        return '<h2>Instance logs</h2><p class="dim">No instance logs yet.</p>'
    sections = "".join(
        f"<h3>{_e(stream)}</h3><pre>{_e(chr(10).join(text)) or '(empty)'}</pre>"
        for stream, text in streams
    )
    return (
        f'<h2>Instance logs</h2><p class="dim">The last {lines} lines of each stream; '
        f"<code>moorage logs {_e(name)}</code> on the server prints them all.</p>{sections}"
    )


def _document(title: str, document: dict[str, Any]) -> str:
    text = json.dumps(document, indent=2, sort_keys=True, default=str)
    return f"<details><summary>{_e(title)}</summary><pre>{_e(text)}</pre></details>"


def _fields(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table of label and markup."""
    return (
        "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    )


def endpoint(
    description: dict[str, Any],
    kind: str,
    numbers: Sequence[VariantNumbers],
    backlog: Backlog | None,
    streams: Sequence[tuple[str, list[str]]],
    lines: int,
) -> Response:
    name = description["EndpointName"]
    fields = [
        ("Status", _status(description["EndpointStatus"])),
        ("Kind", _e(kind)),
        ("Endpoint config", _e(description.get("EndpointConfigName", ""))),
        ("Created", _e(_time(description.get("CreationTime")))),
        ("Modified", _e(_time(description.get("LastModifiedTime")))),
    ]
    if "FailureReason" in description:
        fields.append(
            ("Failure reason", f'<span class="bad">{_e(description["FailureReason"])}</span>')
        )
    pending = description.get("PendingDeploymentSummary")
    if pending:
        fields.append(("Updating to", _e(pending.get("EndpointConfigName", ""))))
    variants = "<br>".join(_variant(v) for v in description.get("ProductionVariants", ()))
    fields.append(("Variants", variants or "—"))
    body = (
        _fields(fields)
        + _document("DescribeEndpoint", description)
        + "<h2>Metrics</h2>"
        + _metrics(numbers, kind)
        + '<p class="dim">Since the server started; latency percentiles are estimated from '
        "the /metrics histogram buckets.</p>" + _backlog(backlog) + _logs(name, streams, lines)
    )
    return _page(f"Endpoint {name}", body)


def transform_job(
    job: dict[str, Any], streams: Sequence[tuple[str, list[str]]], lines: int
) -> Response:
    name = job["TransformJobName"]
    source = job.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource", {})
    resources = job.get("TransformResources", {})
    fields = [
        ("Status", _status(job["TransformJobStatus"])),
        ("Model", _e(job.get("ModelName", ""))),
        ("Input", _e(source.get("S3Uri", ""))),
        ("Output", _e(job.get("TransformOutput", {}).get("S3OutputPath", ""))),
        (
            "Instances",
            _e(f"{resources.get('InstanceType', '')} x {resources.get('InstanceCount', 1)}"),
        ),
        ("Created", _e(_time(job.get("CreationTime")))),
        ("Started", _e(_time(job.get("TransformStartTime")))),
        ("Ended", _e(_time(job.get("TransformEndTime")))),
    ]
    if "FailureReason" in job:
        fields.append(("Failure reason", f'<span class="bad">{_e(job["FailureReason"])}</span>'))
    body = _fields(fields) + _document("DescribeTransformJob", job) + _logs(name, streams, lines)
    return _page(f"Transform job {name}", body)
